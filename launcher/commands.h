// File: launcher/commands.h
// The `strata` subcommands. Each takes the positional arguments after its name and returns the
// process exit code; flags are read from absl.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/grammar/grammar.h"

namespace strata {

int RunMakeModel(const std::vector<std::string>& args);
int RunGenerate(const std::vector<std::string>& args);
int RunInspect(const std::vector<std::string>& args);
int RunBench(const std::vector<std::string>& args);
int RunDemo(const std::vector<std::string>& args);
int RunPlan(const std::vector<std::string>& args);
int RunServe(const std::vector<std::string>& args);
int RunTokenize(const std::vector<std::string>& args);
int RunBenchServe();    // `bench serve`, dispatched by RunBench
int RunBenchGrammar();  // `bench grammar`, dispatched by RunBench
int RunBenchSampler();  // `bench sampler`, dispatched by RunBench

// The grammar --json-schema or --grammar names (bench grammar, bench offline); without either,
// the built-in schema if `use_default`, else a grammar with no rules.
absl::StatusOr<grammar::Grammar> GrammarFromFlags(bool use_default);

// Prints "strata <command>: <message>" to stderr and returns 1 (2 for usage errors).
int Fail(const std::string& command, const std::string& message, int code = 1);

}  // namespace strata
