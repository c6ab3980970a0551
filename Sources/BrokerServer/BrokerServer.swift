// BrokerServer: the edge: NIO listeners, POSIX files, real clock. (Skeleton.)
