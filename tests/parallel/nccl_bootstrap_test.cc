// Run under mpirun -np 4 (label mpi): the world splits into tensor-parallel groups of 2 and each
// group bootstraps one NCCL unique id over MPI. Ranks of a group must hold the same id, and the
// two groups different ids. No GPU is needed for this part of NCCL.
#include <gtest/gtest.h>

#include "parallel/comm.h"
#include "parallel/topology.h"

namespace strata {
namespace {

TEST(NcclBootstrap, OneIdPerTensorParallelGroup) {
  auto world = CreateWorldHostComm();
  ASSERT_EQ(world->size(), 4) << "run with mpirun -np 4";
  const int tp = 2;
  const Topology topo{tp, world->size() / tp};
  auto group = world->Split(topo.stage_of(world->rank()), topo.slice_of(world->rank()));
  auto id = BootstrapNcclUniqueId(group.get());
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_EQ(id->size(), 128u);
  EXPECT_NE(*id, std::string(128, '\0'));
  // Every rank learns every rank's id (one broadcast per rank).
  std::vector<std::string> all(4);
  for (int r = 0; r < 4; ++r) {
    std::string buf = world->rank() == r ? *id : std::string(128, '\0');
    ASSERT_TRUE(world->Broadcast(buf.data(), buf.size(), r).ok());
    all[r] = buf;
  }
  EXPECT_EQ(all[0], all[1]);
  EXPECT_EQ(all[2], all[3]);
  EXPECT_NE(all[0], all[2]);
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  strata::ShutdownComms();
  return rc;
}
