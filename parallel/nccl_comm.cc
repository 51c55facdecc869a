// NCCL DeviceComm, built where CUDA and NCCL are present (no_nccl.cc otherwise).
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "parallel/async_error_watchdog.h"
#include "parallel/comm.h"
#include "runtime/base/status.h"

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

// Collectives and sends run on the communicator's own stream, ordered against the compute
// stream by events (BindComputeStream) so that the host never waits for them; the watchdog
// thread turns an asynchronous NCCL error into an abort and an error for every later call.
class NcclDeviceComm : public DeviceComm {
 public:
  NcclDeviceComm(ncclComm_t c, cudaStream_t s, cudaEvent_t inputs_ready, cudaEvent_t done, int rank, int size,
                 int device)
      : comm_(c), stream_(s), inputs_ready_(inputs_ready), done_(done), rank_(rank), size_(size), device_(device),
        watchdog_([this] { return PollAsyncError(); }, [this] { ncclCommAbort(comm_); }) {}
  ~NcclDeviceComm() override {
    // An aborted communicator is gone: ncclCommAbort freed it, so it is never destroyed again.
    if (!watchdog_.failed()) {
      AsyncErrorWatchdog::Call call(&watchdog_);
      if (call.ok()) {
        cudaStreamSynchronize(stream_);
        ncclCommDestroy(comm_);
      }
    }
    cudaEventDestroy(inputs_ready_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool takes_host_memory() const override { return false; }
  absl::Status BindComputeStream(void* stream) override {
    compute_ = static_cast<cudaStream_t>(stream);
    return absl::OkStatus();
  }

  absl::Status Health() const override {
    return watchdog_.failed() ? Failed("a collective", watchdog_.error()) : absl::OkStatus();
  }

  absl::Status AllReduceSum(float* data, size_t count) override {
    return Issue("ncclAllReduce", [&] { return ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream_); });
  }
  absl::Status AllGather(const float* send, float* recv, size_t count) override {
    return Issue("ncclAllGather", [&] { return ncclAllGather(send, recv, count, ncclFloat, comm_, stream_); });
  }
  absl::Status Send(const void* data, size_t bytes, int peer) override {
    return Issue("ncclSend", [&] { return ncclSend(data, bytes, ncclChar, peer, comm_, stream_); });
  }
  absl::Status Recv(void* data, size_t bytes, int peer) override {
    return Issue("ncclRecv", [&] { return ncclRecv(data, bytes, ncclChar, peer, comm_, stream_); });
  }

 private:
  // One operation on the comm stream, after everything issued so far on the compute stream and
  // before anything issued there later. Without a bound compute stream the host waits instead.
  template <typename Op>
  absl::Status Issue(const char* what, Op op) {
    AsyncErrorWatchdog::Call call(&watchdog_);
    if (!call.ok()) return Failed(what, call.status());
    if (compute_ != nullptr) {
      RETURN_IF_ERROR(CudaStatus(cudaEventRecord(inputs_ready_, compute_), what, device_, rank_));
      RETURN_IF_ERROR(CudaStatus(cudaStreamWaitEvent(stream_, inputs_ready_, 0), what, device_, rank_));
    } else {
      RETURN_IF_ERROR(CudaStatus(cudaDeviceSynchronize(), what, device_, rank_));
    }
    RETURN_IF_ERROR(NcclStatus(op(), what, device_, rank_));
    if (compute_ != nullptr) {
      RETURN_IF_ERROR(CudaStatus(cudaEventRecord(done_, stream_), what, device_, rank_));
      return CudaStatus(cudaStreamWaitEvent(compute_, done_, 0), what, device_, rank_);
    }
    return CudaStatus(cudaStreamSynchronize(stream_), what, device_, rank_);  // the watchdog's abort ends a hang
  }

  absl::Status PollAsyncError() {
    ncclResult_t async = ncclSuccess;
    if (ncclResult_t r = ncclCommGetAsyncError(comm_, &async); r != ncclSuccess)
      return NcclStatus(r, "ncclCommGetAsyncError", device_, rank_);
    return NcclStatus(async, "an earlier collective", device_, rank_);
  }

  absl::Status Failed(const char* what, const absl::Status& why) const {
    return absl::FailedPreconditionError(absl::StrCat(what, " on device ", device_, " (rank ", rank_,
                                                      "): the communicator was aborted after an asynchronous error: ",
                                                      why.message()));
  }

  ncclComm_t comm_;
  cudaStream_t stream_;
  cudaEvent_t inputs_ready_, done_;  // compute -> comm stream, and back
  cudaStream_t compute_ = nullptr;
  int rank_, size_, device_;
  AsyncErrorWatchdog watchdog_;  // last: its thread polls the members above
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
  // Ordering events only: no timing, which keeps record and wait cheap.
  cudaEvent_t events[2] = {nullptr, nullptr};
  for (cudaEvent_t& e : events) {
    if (auto st = CudaStatus(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate", device, rank);
        !st.ok()) {
      for (cudaEvent_t made : events)
        if (made != nullptr) cudaEventDestroy(made);
      cudaStreamDestroy(stream);
      return st;
    }
  }
  ncclComm_t comm;
  if (auto st = NcclStatus(ncclCommInitRank(&comm, host->size(), id, rank), "ncclCommInitRank", device, rank); !st.ok()) {
    for (cudaEvent_t e : events) cudaEventDestroy(e);
    cudaStreamDestroy(stream);
    return st;
  }
  return std::unique_ptr<DeviceComm>(
      new NcclDeviceComm(comm, stream, events[0], events[1], rank, host->size(), device));
}

}  // namespace strata
