#include "kernels/backend.h"

#include <utility>

namespace strata {

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (owner_ && ptr_) owner_->Free(ptr_);
    owner_ = std::exchange(o.owner_, nullptr);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

absl::StatusOr<DeviceBuffer> Backend::AllocateZeroed(size_t bytes) {
  absl::StatusOr<DeviceBuffer> b = Allocate(bytes);
  if (b.ok()) Zero(b->get(), bytes);
  return b;
}

DeviceBuffer::~DeviceBuffer() {
  if (owner_ && ptr_) owner_->Free(ptr_);
}

}  // namespace strata
