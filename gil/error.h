// error.h — the one error type every layer uses for bad user input.
//
// A UsageError carries a one-line message; the `gillab` binary prints it as
// "gillab: error: MESSAGE" and exits with status 2 (design §5). Anything else
// that escapes a command is a runtime failure (exit 1).
#pragma once

#include <stdexcept>
#include <string>

namespace gillab {

struct UsageError : std::runtime_error {
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace gillab
