// KafkaProtocol: the Kafka wire codec. (Skeleton; see ../shared/PROTOCOL.md.)
import NIOCore
import Records
