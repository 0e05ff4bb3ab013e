// exec_models.cc — the execution-model registry (design §9) and the seam's
// default blocking wait. One row per model: its names and its factory. The
// lock policies are one row family (every gil::PolicyNames() entry builds a
// GilModel); `stm` (stm_model.h) is one more row.
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <functional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gil/clock.h"
#include "gil/error.h"
#include "interp/exec_model.h"
#include "interp/gil_model.h"
#include "interp/stm_model.h"

namespace gillab::interp {
namespace {

struct ModelRow {
  std::vector<std::string> names;
  std::function<std::unique_ptr<ExecModel>(std::string_view name, const ExecModelOptions&)> make;
};

const std::vector<ModelRow>& Rows() {
  static const std::vector<ModelRow> rows = {
      {gil::PolicyNames(),
       [](std::string_view name, const ExecModelOptions& o) -> std::unique_ptr<ExecModel> {
         return std::make_unique<GilModel>(gil::MakeGil(name, o.gil));
       }},
      {{"stm"},
       [](std::string_view, const ExecModelOptions& o) -> std::unique_ptr<ExecModel> {
         return std::make_unique<StmModel>(o);
       }},
  };
  return rows;
}

}  // namespace

BlockResult ExecModel::Block(ExecThread& t, const BlockingWait& wait) {
  if (wait.parkable) return {.parked = true};
  BeginBlocking(t);
  timespec ts{static_cast<time_t>(wait.duration_us / 1000000), static_cast<long>(wait.duration_us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
  const int64_t asked_ns = gil::NowNs();
  EndBlocking(t);
  return {.resume_wait_ns = gil::NowNs() - asked_ns};
}

const std::vector<std::string>& ExecModelNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const ModelRow& row : Rows()) out.insert(out.end(), row.names.begin(), row.names.end());
    return out;
  }();
  return names;
}

std::unique_ptr<ExecModel> MakeExecModel(std::string_view name, const ExecModelOptions& options) {
  for (const ModelRow& row : Rows()) {
    if (std::find(row.names.begin(), row.names.end(), name) != row.names.end()) return row.make(name, options);
  }
  throw UsageError(fmt::format("unknown policy '{}' (choose from {})", name, fmt::join(ExecModelNames(), ", ")));
}

}  // namespace gillab::interp
