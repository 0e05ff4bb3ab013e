// asm_error.h — the error the assembler and the verifier throw: a UsageError
// (so `gillab` prints it on one line and exits 2) whose message is
// `FILE:LINE:COL: message`, the message saying what was expected.
#pragma once

#include <string>

#include <fmt/core.h>

#include "gil/error.h"

namespace gillab::interp {

struct AsmError : UsageError {
  AsmError(std::string file, int line, int col, std::string message)
      : UsageError(fmt::format("{}:{}:{}: {}", file, line, col, message)),
        file(std::move(file)), line(line), col(col), message(std::move(message)) {}
  std::string file;
  int line;
  int col;
  std::string message;  // without the position
};

}  // namespace gillab::interp
