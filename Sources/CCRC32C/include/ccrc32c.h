#ifndef KEEL_CCRC32C_H
#define KEEL_CCRC32C_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as Kafka's record
/// batch v2 uses it. `crc` is the running value: pass 0 for a fresh checksum, or the result
/// of a previous call to continue over more bytes. Uses the CPU's crc32 instruction
/// (SSE 4.2) when present, a slicing-by-8 table otherwise.
uint32_t keel_crc32c(uint32_t crc, const void *data, size_t length);

/// The portable table implementation, exposed so tests can check both paths agree.
uint32_t keel_crc32c_table(uint32_t crc, const void *data, size_t length);

/// 1 if the hardware path is in use.
int keel_crc32c_hardware(void);

#endif
