// File: tests/shell.h
// Running real programs from tests (the strata binary, mpirun, node, python3, promtool).
#pragma once

#include <string>

namespace strata::testing {

struct ShellResult {
  int code = -1;    // exit status
  std::string out;  // standard output (append " 2>&1" to the command for both streams)
};

// Runs `cmd` with /bin/sh and waits for it.
ShellResult RunShell(const std::string& cmd);

// A whole file ("" when it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace strata::testing
