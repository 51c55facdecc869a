// NCCL DeviceComm, built where CUDA and NCCL are present (no_nccl.cc otherwise).
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "parallel/comm.h"

namespace strata {
namespace {

absl::Status CudaStatus(cudaError_t e, const char* what, int device, int rank) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " failed on device ", device, " (rank ", rank, "): ",
                                          cudaGetErrorString(e)));
}

absl::Status NcclStatus(ncclResult_t r, const char* what, int device, int rank) {
  if (r == ncclSuccess || r == ncclInProgress) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " failed on device ", device, " (rank ", rank, "): ",
                                          ncclGetErrorString(r)));
}

class NcclDeviceComm : public DeviceComm {
 public:
  NcclDeviceComm(ncclComm_t c, cudaStream_t s, int rank, int size, int device)
      : comm_(c), stream_(s), rank_(rank), size_(size), device_(device) {}
  ~NcclDeviceComm() override {
    // An aborted communicator is gone: ncclCommAbort frees it, so it is never destroyed again.
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool takes_host_memory() const override { return false; }

  absl::Status AllReduceSum(float* data, size_t count) override {
    if (comm_ == nullptr) return Aborted("ncclAllReduce");
    if (auto st = NcclStatus(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce",
                             device_, rank_);
        !st.ok())
      return st;
    return Wait("ncclAllReduce");
  }
  absl::Status AllGather(const float* send, float* recv, size_t count) override {
    if (comm_ == nullptr) return Aborted("ncclAllGather");
    if (auto st = NcclStatus(ncclAllGather(send, recv, count, ncclFloat, comm_, stream_), "ncclAllGather", device_,
                             rank_);
        !st.ok())
      return st;
    return Wait("ncclAllGather");
  }
  absl::Status Send(const void* data, size_t bytes, int peer) override {
    if (comm_ == nullptr) return Aborted("ncclSend");
    if (auto st = NcclStatus(ncclSend(data, bytes, ncclChar, peer, comm_, stream_), "ncclSend", device_, rank_); !st.ok())
      return st;
    return Wait("ncclSend");
  }
  absl::Status Recv(void* data, size_t bytes, int peer) override {
    if (comm_ == nullptr) return Aborted("ncclRecv");
    if (auto st = NcclStatus(ncclRecv(data, bytes, ncclChar, peer, comm_, stream_), "ncclRecv", device_, rank_); !st.ok())
      return st;
    return Wait("ncclRecv");
  }

 private:
  absl::Status Aborted(const char* what) const {
    return absl::FailedPreconditionError(absl::StrCat(what, " on device ", device_, " (rank ", rank_,
                                                      "): the communicator was aborted after an earlier error"));
  }

  // The watchdog: completion, or an asynchronous NCCL error (a dead peer, a network failure),
  // which aborts the communicator so that no rank blocks forever.
  absl::Status Wait(const char* what) {
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return absl::OkStatus();
      if (q != cudaErrorNotReady) return CudaStatus(q, what, device_, rank_);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        ncclCommAbort(comm_);
        comm_ = nullptr;  // freed by the abort: nothing may touch it again
        return NcclStatus(async, what, device_, rank_);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  ncclComm_t comm_;
  cudaStream_t stream_;
  int rank_, size_, device_;
};

}  // namespace

bool NcclAvailable() { return true; }

absl::StatusOr<std::string> BootstrapNcclUniqueId(HostComm* host) {
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (host->rank() == 0) {
    if (auto st = NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId", -1, 0); !st.ok()) return st;
  }
  if (auto st = host->Broadcast(&id, sizeof(id), 0); !st.ok()) return st;
  return std::string(reinterpret_cast<const char*>(&id), sizeof(id));
}

absl::StatusOr<std::unique_ptr<DeviceComm>> CreateNcclDeviceComm(HostComm* host, int device) {
  auto id_bytes = BootstrapNcclUniqueId(host);
  if (!id_bytes.ok()) return id_bytes.status();
  ncclUniqueId id;
  std::memcpy(&id, id_bytes->data(), sizeof(id));
  const int rank = host->rank();
  if (auto st = CudaStatus(cudaSetDevice(device), "cudaSetDevice", device, rank); !st.ok()) return st;
  cudaStream_t stream;
  if (auto st = CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate", device, rank);
      !st.ok())
    return st;
  ncclComm_t comm;
  if (auto st = NcclStatus(ncclCommInitRank(&comm, host->size(), id, rank), "ncclCommInitRank", device, rank); !st.ok()) {
    cudaStreamDestroy(stream);
    return st;
  }
  return std::unique_ptr<DeviceComm>(new NcclDeviceComm(comm, stream, rank, host->size(), device));
}

}  // namespace strata
