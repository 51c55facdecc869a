// File: tests/test_models.h
// Small seeded random models for every sharing scheme the engine supports, written with
// `WriteRandomModel` into a per-test temporary directory.
#pragma once

#include <string>
#include <vector>

#include "runtime/model/model_writer.h"

namespace strata::testing {

struct SchemeCase {
  std::string name;
  MakeModelOptions options;
};

// MHA, GQA, MQA, stock Pythia (parallel and sequential residual), MLKV with uneven groups, CLA,
// LCKV w=2 and sandwich w=4, LCKV with small m+b, YOCO-style with sliding windows, a
// window-reads-window map, force_nodiag.
std::vector<SchemeCase> AllSchemes();

// A fresh empty directory under $TMPDIR (or /tmp).
std::string TempDir(const std::string& tag);

// Writes `o` with `dtype` into a fresh directory and returns it.
std::string MakeModel(const std::string& tag, MakeModelOptions o, const std::string& dtype = "float32");

}  // namespace strata::testing
