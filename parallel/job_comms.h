// File: parallel/job_comms.h
// The one factory of a job's communicators: the world (MPI under mpirun, else one rank), each
// pipeline stage's tensor-parallel group, and the data plane: NCCL when every local rank has a
// GPU of its own, else MPI on a duplicate of the world communicator (so that data-plane
// messages can never match a control-plane receive). A host data plane used with device memory
// is staged through host buffers by DataPlaneFor (parallel/staged_device_comm.h).
#pragma once

#include <memory>
#include <string>

#include "parallel/comm.h"

namespace strata {

struct JobCommsOptions {
  int tp = 1;              // ranks per tensor-parallel group (consecutive world ranks)
  bool cuda = false;       // the backend is CUDA: device data planes are possible
  int cuda_devices = 0;    // on this host
  int local_ranks = 1;     // ranks of the job on this host
  int cuda_device = 0;     // this rank's device
};

// The communicators the engine uses; not owned. Null communicators: a single rank.
struct EngineComms {
  HostComm* world = nullptr;         // every rank; rank 0 schedules and broadcasts each step
  DeviceComm* tp = nullptr;          // this rank's tensor-parallel group
  DeviceComm* world_data = nullptr;  // every rank: hidden states and K/V rows between stages
};

struct JobComms {
  std::unique_ptr<HostComm> world, tp_group;
  std::unique_ptr<DeviceComm> tp, world_data;
  std::string data_plane;  // "nccl", "mpi", or "mpi with host staging (...)"

  EngineComms engine() const { return {world.get(), tp.get(), world_data.get()}; }
};

// Builds them all; a rank that cannot (NCCL fails to start) aborts the whole job with the reason.
JobComms CreateJobComms(const JobCommsOptions& options);

}  // namespace strata
