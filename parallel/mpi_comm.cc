// MPI implementations of HostComm and DeviceComm, and the single-rank HostComm.
// The C API only: Open MPI's deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "parallel/comm.h"
#include "runtime/base/status.h"

namespace strata {
namespace {

absl::Status Check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return absl::InternalError(absl::StrCat(what, " failed: ", std::string(msg, len)));
}

class MpiHostComm : public HostComm {
 public:
  explicit MpiHostComm(MPI_Comm c, bool owned) : comm_(c), owned_(owned) {
    MPI_Comm_rank(c, &rank_);
    MPI_Comm_size(c, &size_);
  }
  ~MpiHostComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  absl::Status Broadcast(void* data, size_t bytes, int root) override {
    return Check(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, comm_), "MPI_Bcast");
  }
  absl::Status Barrier() override { return Check(MPI_Barrier(comm_), "MPI_Barrier"); }
  absl::Status Send(const void* data, size_t bytes, int peer, int tag) override {
    return Check(MPI_Send(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, comm_), "MPI_Send");
  }
  absl::StatusOr<std::vector<char>> Recv(int peer, int tag) override {
    MPI_Status st;
    RETURN_IF_ERROR(Check(MPI_Probe(peer, tag, comm_, &st), "MPI_Probe"));
    return ReceiveProbed(st);
  }
  absl::StatusOr<std::unique_ptr<PendingRecv>> RecvAsync(void* data, size_t bytes, int peer, int tag) override {
    auto p = std::make_unique<MpiPendingRecv>();
    RETURN_IF_ERROR(Check(MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, comm_, &p->request),
                          "MPI_Irecv"));
    return std::unique_ptr<PendingRecv>(std::move(p));
  }
  absl::StatusOr<bool> TryRecv(int tag, std::vector<char>* out, int* source) override {
    int flag = 0;
    MPI_Status st;
    RETURN_IF_ERROR(Check(MPI_Iprobe(MPI_ANY_SOURCE, tag, comm_, &flag, &st), "MPI_Iprobe"));
    if (!flag) return false;
    *source = st.MPI_SOURCE;
    ASSIGN_OR_RETURN(*out, ReceiveProbed(st));
    return true;
  }
  std::unique_ptr<HostComm> Split(int color, int key) override {
    MPI_Comm c;
    MPI_Comm_split(comm_, color, key, &c);
    return std::make_unique<MpiHostComm>(c, true);
  }
  [[noreturn]] void Abort(const std::string& why) override {
    std::fprintf(stderr, "strata rank %d: aborting the job: %s\n", rank_, why.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();
  }
  MPI_Comm comm() const { return comm_; }

 private:
  struct MpiPendingRecv : PendingRecv {
    MPI_Request request = MPI_REQUEST_NULL;
    ~MpiPendingRecv() override {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (request != MPI_REQUEST_NULL && !finalized) MPI_Cancel(&request);
    }
    absl::Status Wait() override { return Check(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait"); }
  };
  absl::StatusOr<std::vector<char>> ReceiveProbed(const MPI_Status& st) {
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    std::vector<char> out(static_cast<size_t>(count));
    RETURN_IF_ERROR(Check(MPI_Recv(out.data(), count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, comm_, MPI_STATUS_IGNORE),
                          "MPI_Recv"));
    return out;
  }
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

class SingleHostComm : public HostComm {
  static absl::Status NoPeer() { return absl::FailedPreconditionError("a single-rank job has no peer"); }

 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  absl::Status Broadcast(void*, size_t, int) override { return absl::OkStatus(); }
  absl::Status Barrier() override { return absl::OkStatus(); }
  absl::Status Send(const void*, size_t, int, int) override { return NoPeer(); }
  absl::StatusOr<std::vector<char>> Recv(int, int) override { return NoPeer(); }
  absl::StatusOr<std::unique_ptr<PendingRecv>> RecvAsync(void*, size_t, int, int) override { return NoPeer(); }
  absl::StatusOr<bool> TryRecv(int, std::vector<char>*, int*) override { return false; }
  std::unique_ptr<HostComm> Split(int, int) override { return std::make_unique<SingleHostComm>(); }
  [[noreturn]] void Abort(const std::string& why) override {
    std::fprintf(stderr, "strata: aborting: %s\n", why.c_str());
    std::exit(1);
  }
};

// Host-staged data plane for the CPU backend: device memory is host memory. It owns a duplicate
// of the control plane's communicator, so that its messages and the control messages can never
// match each other's receives, whatever their tags.
class MpiDeviceComm : public DeviceComm {
 public:
  explicit MpiDeviceComm(MPI_Comm c) : comm_(c) {
    MPI_Comm_rank(c, &rank_);
    MPI_Comm_size(c, &size_);
  }
  ~MpiDeviceComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool takes_host_memory() const override { return true; }
  absl::Status AllReduceSum(float* data, size_t count) override {
    return Check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_FLOAT, MPI_SUM, comm_),
                 "MPI_Allreduce");
  }
  absl::Status AllGather(const float* send, float* recv, size_t count) override {
    return Check(MPI_Allgather(send, static_cast<int>(count), MPI_FLOAT, recv, static_cast<int>(count), MPI_FLOAT, comm_),
                 "MPI_Allgather");
  }
  absl::Status Send(const void* data, size_t bytes, int peer) override {
    return Check(MPI_Send(data, static_cast<int>(bytes), MPI_BYTE, peer, 0, comm_), "MPI_Send");
  }
  absl::Status Recv(void* data, size_t bytes, int peer) override {
    return Check(MPI_Recv(data, static_cast<int>(bytes), MPI_BYTE, peer, 0, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

bool LaunchedByMpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace

std::unique_ptr<HostComm> CreateWorldHostComm() {
  if (!LaunchedByMpi()) return std::make_unique<SingleHostComm>();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);
  // Errors come back as codes so that they can be reported, then the job is aborted.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::make_unique<MpiHostComm>(MPI_COMM_WORLD, false);
}

std::unique_ptr<DeviceComm> CreateDeviceComm(HostComm* host) {
  auto* mpi = dynamic_cast<MpiHostComm*>(host);
  if (mpi == nullptr || host->size() == 1) return nullptr;
  MPI_Comm dup;  // collective over the group: every rank creates its data plane in the same order
  if (MPI_Comm_dup(mpi->comm(), &dup) != MPI_SUCCESS) mpi->Abort("MPI_Comm_dup of the data plane failed");
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  return std::make_unique<MpiDeviceComm>(dup);
}

void ShutdownComms() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

}  // namespace strata
