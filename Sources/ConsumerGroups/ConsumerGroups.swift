// ConsumerGroups: the classic group coordinator as a pure state machine. (Skeleton; see DESIGN.md, Consumer groups.)
