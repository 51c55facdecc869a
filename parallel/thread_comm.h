// File: parallel/thread_comm.h
// In-process communicators: the ranks are threads of one process. For fast multi-rank tests of
// the engine without mpirun; same semantics as the MPI versions.
#pragma once

#include <memory>
#include <vector>

#include "parallel/comm.h"

namespace strata {

// One HostComm per rank of an n-thread group; hand comms[i] to thread i.
std::vector<std::unique_ptr<HostComm>> CreateThreadHostComms(int n);

// The data plane over the ranks of a thread HostComm (each rank calls it with its own comm).
std::unique_ptr<DeviceComm> CreateThreadDeviceComm(HostComm* host);

}  // namespace strata
