// File: parallel/comm.h
// The two communicators (lmdeploy's split): HostComm is the control plane (step broadcasts,
// barriers, aborts); DeviceComm is the data plane on device memory (all-reduce, all-gather,
// send, recv). Every collective is issued in the same order on every rank of its group.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace strata {

// Tags of HostComm's point-to-point messages. The MPI data plane runs on a communicator of its
// own (a duplicate), so control and data messages are apart whatever their tags.
enum HostTag : int {
  kTagStep = 1,    // a step plan travelling from rank 0 down the pipeline
  kTagLogits = 2,  // last stage -> rank 0: one micro-batch's logits
  kTagStats = 3,   // any rank -> rank 0: step statistics for the metrics
};

// A receive in progress (HostComm::RecvAsync).
class PendingRecv {
 public:
  virtual ~PendingRecv() = default;
  virtual absl::Status Wait() = 0;
};

class HostComm {
 public:
  virtual ~HostComm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual absl::Status Broadcast(void* data, size_t bytes, int root) = 0;
  virtual absl::Status Barrier() = 0;
  // Ranks with the same color form a group, ordered by key.
  virtual std::unique_ptr<HostComm> Split(int color, int key) = 0;
  // Point to point. Messages between one pair of ranks with one tag arrive in the order sent.
  virtual absl::Status Send(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual absl::StatusOr<std::vector<char>> Recv(int peer, int tag) = 0;  // a message of any size
  // Starts receiving exactly `bytes` into `data`; the data is there once Wait() returns OK.
  virtual absl::StatusOr<std::unique_ptr<PendingRecv>> RecvAsync(void* data, size_t bytes, int peer, int tag) = 0;
  // A message with `tag` from any rank if one has arrived (its sender in *source); never blocks.
  virtual absl::StatusOr<bool> TryRecv(int tag, std::vector<char>* out, int* source) = 0;
  // Ends the whole job (every rank) with a message; never returns.
  [[noreturn]] virtual void Abort(const std::string& why) = 0;
};

class DeviceComm {
 public:
  virtual ~DeviceComm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // True when the pointers it takes are host memory (MPI, threads); false for device memory
  // (NCCL). The runtime stages device buffers through host memory for host data planes.
  virtual bool takes_host_memory() const = 0;
  // Ordering against the compute backend. Every operation reads its inputs after all work issued
  // to the backend before the call, and work issued after the call sees its results. Host data
  // planes get this for free (the CPU backend and host staging are synchronous); a device data
  // plane (NCCL) orders itself against `stream` (the backend's native stream, a cudaStream_t)
  // with events, so the host never waits. Unbound, a device plane waits on the host.
  virtual absl::Status BindComputeStream(void* /*stream*/) { return absl::OkStatus(); }
  // OK unless an asynchronous error broke the communicator; results produced since are garbage.
  // (Operations return before they run on a device plane, so their own status cannot say.)
  virtual absl::Status Health() const { return absl::OkStatus(); }
  virtual absl::Status AllReduceSum(float* data, size_t count) = 0;
  // recv = concatenation over ranks of each rank's `count` floats.
  virtual absl::Status AllGather(const float* send, float* recv, size_t count) = 0;
  virtual absl::Status Send(const void* data, size_t bytes, int peer) = 0;
  virtual absl::Status Recv(void* data, size_t bytes, int peer) = 0;
};

// The world communicator: MPI when the process was started by mpirun (or srun), otherwise a
// single-rank communicator. Initializes MPI on first use.
std::unique_ptr<HostComm> CreateWorldHostComm();

// The data-plane communicator over the same ranks as `host` ("mpi": host-staged, for the CPU
// backend). Returns null for a single-rank group.
std::unique_ptr<DeviceComm> CreateDeviceComm(HostComm* host);

// Finalizes MPI if it was initialized (call once before exit).
void ShutdownComms();

}  // namespace strata

namespace strata {

// The NCCL data plane for the ranks of `host` on CUDA device `device`: the unique id is
// broadcast over `host`, collectives run on the comm's own stream, and every wait polls
// ncclCommGetAsyncError so that a broken peer aborts the communicator instead of hanging.
// Unimplemented where NCCL was not compiled in.
absl::StatusOr<std::unique_ptr<DeviceComm>> CreateNcclDeviceComm(HostComm* host, int device);

// Whether this build has NCCL.
bool NcclAvailable();

// The NCCL bootstrap alone: rank 0 of `host` creates a unique id and broadcasts it; every rank
// returns the same 128 bytes. Works without a GPU.
absl::StatusOr<std::string> BootstrapNcclUniqueId(HostComm* host);

}  // namespace strata
