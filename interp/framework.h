// framework.h — a handler program with the web-framework prelude of design
// §12 in front of it (interp/programs/lib/framework.gasm): what the
// `transactional` server runs per request, in one atomic unit, as Tornado's
// bookkeeping runs around the seed's handler. The prelude stamps the start
// time with the chosen clock, calls the handler's `handle`, and counts the
// request in the global `framework_requests`.
//
//   auto program = LoadProgramWithFramework("primes_list");
//   vm.Call(FrameworkEntry("transaction_time"), {request, work_units});
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "interp/program.h"

namespace gillab::interp {

// The clocks a framework can stamp with: now_ns (an outside effect: an stm
// unit becomes inevitable), transaction_time (does not), none.
const std::vector<std::string>& FrameworkClockNames();
// The entry function for a clock ("framework_now_ns", ...). Throws UsageError
// for an unknown clock.
std::string FrameworkEntry(const std::string& clock);
// The handler (a shipped name or a .gasm path, as LoadProgram takes) assembled
// after the prelude, as one program named "framework.gasm+HANDLER.gasm": the
// prelude's lines are its own, the handler's are shifted by the prelude's
// length. Throws UsageError naming FILE:LINE:COL.
std::shared_ptr<const Program> LoadProgramWithFramework(const std::string& handler);

}  // namespace gillab::interp
