#include "parallel/job_comms.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "parallel/topology.h"

namespace strata {

JobComms CreateJobComms(const JobCommsOptions& o) {
  JobComms c;
  c.world = CreateWorldHostComm();
  const int tp = std::max(1, o.tp);
  // Each pipeline stage's slices form a tensor-parallel group, ordered by slice.
  const Topology topo{tp, std::max(1, c.world->size() / tp)};
  const int rank = c.world->rank();
  c.tp_group = c.world->Split(topo.stage_of(rank), topo.slice_of(rank));
  c.data_plane = "mpi";
  if (o.cuda && c.world->size() > 1) {
    // NCCL needs a GPU per rank: ranks sharing one (a single lent GPU, tests) use MPI, staged
    // through host memory by the engine. Every rank decides alike: the environment is the same.
    if (NcclAvailable() && o.cuda_devices >= o.local_ranks) {
      auto nccl_tp = c.tp_group->size() > 1 ? CreateNcclDeviceComm(c.tp_group.get(), o.cuda_device)
                                            : absl::StatusOr<std::unique_ptr<DeviceComm>>(nullptr);
      if (!nccl_tp.ok()) c.world->Abort(absl::StrCat("NCCL for the tensor-parallel group: ", nccl_tp.status().message()));
      auto nccl_world = CreateNcclDeviceComm(c.world.get(), o.cuda_device);
      if (!nccl_world.ok()) c.world->Abort(absl::StrCat("NCCL for the pipeline: ", nccl_world.status().message()));
      c.tp = std::move(nccl_tp).value();
      c.world_data = std::move(nccl_world).value();
      c.data_plane = "nccl";
      return c;
    }
    c.data_plane = absl::StrCat("mpi with host staging (", o.local_ranks, " ranks on this host, ", o.cuda_devices,
                                " GPUs", NcclAvailable() ? "" : ", no NCCL in this build", ")");
  }
  c.tp = CreateDeviceComm(c.tp_group.get());
  c.world_data = CreateDeviceComm(c.world.get());
  return c;
}

}  // namespace strata
