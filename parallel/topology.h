// File: parallel/topology.h
// Rank layout: rank = stage * tp + tensor slice. Pure value arithmetic, no MPI.
#pragma once

namespace strata {

struct Topology {
  int tp = 1;  // tensor-parallel ranks per pipeline stage
  int pp = 1;  // pipeline stages

  constexpr int world_size() const { return tp * pp; }
  constexpr int stage_of(int rank) const { return rank / tp; }
  constexpr int slice_of(int rank) const { return rank % tp; }
  constexpr int rank_of(int stage, int slice) const { return stage * tp + slice; }
};

}  // namespace strata
