// File: parallel/staged_device_comm.h
// A host data plane (MPI, threads) used with a backend whose memory the host cannot address
// (CUDA): every call copies device buffers through host buffers. This is how tensor and pipeline
// parallelism run when NCCL cannot be used, e.g. several ranks sharing one GPU, which NCCL
// refuses.
#pragma once

#include <vector>

#include "kernels/backend.h"
#include "parallel/comm.h"

namespace strata {

class StagedDeviceComm : public DeviceComm {
 public:
  // `inner` takes host memory; `backend` owns the device buffers passed in. Neither is owned.
  StagedDeviceComm(DeviceComm* inner, Backend* backend) : inner_(inner), backend_(backend) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  bool takes_host_memory() const override { return false; }
  absl::Status AllReduceSum(float* data, size_t count) override;
  absl::Status AllGather(const float* send, float* recv, size_t count) override;
  absl::Status Send(const void* data, size_t bytes, int peer) override;
  absl::Status Recv(void* data, size_t bytes, int peer) override;

 private:
  char* Host(std::vector<char>* buffer, size_t bytes);

  DeviceComm* inner_;
  Backend* backend_;
  std::vector<char> send_host_, recv_host_;  // reused between calls
};

// `comm` itself when it can take `backend`'s memory, else a staging wrapper kept in `*holder`.
// Null stays null (single-rank groups).
DeviceComm* DataPlaneFor(DeviceComm* comm, Backend* backend, std::unique_ptr<DeviceComm>* holder);

}  // namespace strata
