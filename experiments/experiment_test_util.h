// experiment_test_util.h — parsing helpers of the experiment-file tests
// (experiment_test.cc, experiment_mode_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "experiments/experiment.h"
#include "gil/error.h"

namespace gillab::experiments {

inline Experiment Parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return ParseExperiment(text, "experiments/x.toml", overrides);
}

// The UsageError message for text (and overrides); fails the test when none is thrown.
inline std::string ErrorOf(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    Parse(text, overrides);
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no UsageError for:\n" << text;
  return "";
}

}  // namespace gillab::experiments
