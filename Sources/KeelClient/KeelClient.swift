// KeelClient: the native async Swift client. (Skeleton.)
