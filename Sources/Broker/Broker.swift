// Broker: the node logic with no sockets and no wall clock. (Skeleton.)
