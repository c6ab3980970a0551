// Simulation: a seeded, deterministic world around the real Raft core. (Skeleton.)
import Raft
