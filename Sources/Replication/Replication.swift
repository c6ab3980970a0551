// Replication: one Raft group per partition over LogStorage. (Skeleton; see DESIGN.md, Replication.)
