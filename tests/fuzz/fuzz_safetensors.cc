// Bytes as a .safetensors file (8-byte header length, JSON header, data): opening either fails
// with a Status or gives tensors that all lie inside the file.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("fuzz.safetensors", 0);
  if (fd < 0) return 0;
  if (size > 0 && write(fd, data, size) != static_cast<ssize_t>(size)) {
    close(fd);
    return 0;
  }
  auto f = strata::SafetensorsFile::Open("/proc/self/fd/" + std::to_string(fd));
  if (f.ok())
    for (const auto& [name, t] : (*f)->tensors())
      if (t.offset + t.nbytes > size || t.offset < 8) std::abort();
  close(fd);
  return 0;
}
