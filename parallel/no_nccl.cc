// Built instead of nccl_comm.cc where CUDA or NCCL is absent.
#include "parallel/comm.h"

namespace strata {

absl::StatusOr<std::unique_ptr<DeviceComm>> CreateNcclDeviceComm(HostComm*, int) {
  return absl::UnimplementedError("this build has no NCCL (CUDA switched off or not found)");
}

bool NcclAvailable() { return false; }

absl::StatusOr<std::string> BootstrapNcclUniqueId(HostComm*) {
  return absl::UnimplementedError("this build has no NCCL (CUDA switched off or not found)");
}

}  // namespace strata
