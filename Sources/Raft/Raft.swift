// Raft: consensus as a deterministic state machine. (Skeleton; see DESIGN.md, Replication.)
