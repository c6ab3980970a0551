// LogStorage: segmented, append-only partition logs. (Skeleton; see DESIGN.md, Storage.)
import NIOCore
import Records
