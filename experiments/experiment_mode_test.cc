// experiment_mode_test.cc — the simulator's keys in experiment files (design
// §13): mode, cores and seed as settings, their top-level spelling, sweeps of
// mode, the refusals, and the resolved file's round trip.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "experiments/experiment.h"
#include "experiments/experiment_test_util.h"
#include "gil/error.h"

namespace gillab::experiments {
namespace {

TEST(ExperimentMode, DefaultsAreRealOnTwoCoresSeedOne) {
  Experiment e = Parse("name = \"x\"\n");
  EXPECT_EQ(e.settings.at("mode"), "real");
  EXPECT_EQ(e.settings.at("cores"), "2");
  EXPECT_EQ(e.settings.at("seed"), "1");
}

TEST(ExperimentMode, TopLevelValuesAreSettingsAndArraysAreAxes) {
  Experiment e = Parse("mode = \"simulate\"\ncores = [2, 4, 64]\n[sweep]\ncpu_threads = [0, 1]\n");
  EXPECT_EQ(e.settings.at("mode"), "simulate");
  auto points = e.Points();
  ASSERT_EQ(points.size(), 6u);
  // The top-level axis comes first in the file, so it varies slowest.
  EXPECT_EQ(points[0].Describe(), "cores=2 cpu_threads=0");
  EXPECT_EQ(points[5].Describe(), "cores=64 cpu_threads=1");
  // The same experiment written under [settings] and [sweep] is the same experiment.
  Experiment same = Parse("[settings]\nmode = \"simulate\"\n[sweep]\ncores = [2, 4, 64]\ncpu_threads = [0, 1]\n");
  EXPECT_EQ(e.ToToml(), same.ToToml());
}

TEST(ExperimentMode, ModeSweptRunsEachPointBothWays) {
  Experiment e = Parse("[settings]\ncores = 2\nseed = 5\n[sweep]\ncpu_threads = [0, 1]\nmode = [\"real\", \"simulate\"]\n");
  auto points = e.Points();
  ASSERT_EQ(points.size(), 4u);
  EXPECT_EQ(points[0].settings.at("mode"), "real");
  EXPECT_EQ(points[1].settings.at("mode"), "simulate");
  EXPECT_EQ(points[1].settings.at("seed"), "5");
}

TEST(ExperimentMode, TheResolvedFileRoundTrips) {
  Experiment e = Parse(
      "mode = \"simulate\"\ncores = [4, 16]\n[settings]\nseed = 9\n[sweep]\n"
      "variant = [{ label = \"t\", policy = \"ticket\" }, { label = \"n\", policy = \"newgil\" }]\n",
      {"cpu_threads=[1,2]"});
  Experiment again = ParseExperiment(e.ToToml(), "experiments/resolved.toml");
  EXPECT_EQ(again.ToToml().substr(again.ToToml().find("name =")), e.ToToml().substr(e.ToToml().find("name =")));
  ASSERT_EQ(again.Points().size(), e.Points().size());
  for (size_t i = 0; i < e.Points().size(); ++i) EXPECT_EQ(again.Points()[i].settings, e.Points()[i].settings);
}

TEST(ExperimentMode, OverridesSetAndSweepMode) {
  Experiment e = Parse("name = \"x\"\n", {"mode=simulate", "cores=[2,8]"});
  EXPECT_EQ(e.Points().size(), 2u);
  EXPECT_EQ(e.Points()[1].settings.at("cores"), "8");
  EXPECT_EQ(e.Points()[1].settings.at("mode"), "simulate");
}

TEST(ExperimentMode, BadValuesNameTheFileLineAndSuggest) {
  EXPECT_EQ(ErrorOf("name = \"x\"\n\ncores = 0\n"), "experiments/x.toml:3: cores must be at least 1 (got 0)");
  EXPECT_EQ(ErrorOf("name = \"x\"\nmode = \"simulated\"\n"),
            "experiments/x.toml:2: mode must be real or simulate (got 'simulated'; did you mean 'simulate'?)");
  EXPECT_EQ(ErrorOf("[settings]\nmode = \"fake\"\n"), "experiments/x.toml:2: mode must be real or simulate (got 'fake')");
  EXPECT_EQ(ErrorOf("[settings]\nseed = -1\n"), "experiments/x.toml:2: seed must be at least 0 (got -1)");
  EXPECT_EQ(ErrorOf("mode = \"simulate\"\n[settings]\nmode = \"real\"\n"),
            "experiments/x.toml:3: 'mode' is set twice (at the top level and in [settings])");
  EXPECT_EQ(ErrorOf("mode = \"simulate\"\ncores = [2]\n[sweep]\ncores = [4]\n"),
            "experiments/x.toml:4: 'cores' is swept twice (at the top level and in [sweep])");
  EXPECT_EQ(ErrorOf("mode = \"simulate\"\ncores = 4\n[sweep]\ncores = [4]\n"),
            "experiments/x.toml:4: 'cores' is both fixed in [settings] and swept in [sweep]");
  EXPECT_EQ(ErrorOf("core = [2]\n"), "experiments/x.toml:1: unknown key 'core' (did you mean 'cores'?)");
  EXPECT_EQ(ErrorOf("name = \"x\"\n", {"mode=simulat"}),
            "-s mode=simulat: mode must be real or simulate (got 'simulat'; did you mean 'simulate'?)");
}

TEST(ExperimentMode, SimulatorSettingsThatARealRunWouldIgnoreAreRefused) {
  EXPECT_EQ(ErrorOf("name = \"x\"\ncores = [2, 4]\n"),
            "experiments/x.toml:2: 'cores' is swept but point 0 (cores=2) runs real, which ignores it; sweep cores "
            "in a simulate-only experiment (mode = \"simulate\")");
  EXPECT_NE(ErrorOf("[sweep]\nmode = [\"real\", \"simulate\"]\nseed = [1, 2]\n").find(
                "experiments/x.toml:3: 'seed' is swept but point 0"),
            std::string::npos);
  EXPECT_EQ(ErrorOf("[settings]\ncores = 8\n"),
            "experiments/x.toml:2: 'cores' applies to mode = \"simulate\" only, and every point runs real");
  EXPECT_NE(ErrorOf("[sweep]\nvariant = [{ label = \"real8\", mode = \"real\", cores = 8 }, { mode = \"simulate\" }]\n")
                .find("variant 'real8' sets 'cores' but point 0 (variant=real8) runs real"),
            std::string::npos);
  // A fixed cores beside real and simulated points is what validation needs.
  EXPECT_NO_THROW(Parse("[settings]\ncores = 2\n[sweep]\nmode = [\"real\", \"simulate\"]\n"));
}

TEST(ExperimentMode, OutsideServersAndClientsCannotBeSimulated) {
  EXPECT_NE(ErrorOf("mode = \"simulate\"\n[settings]\nserver_command = \"python3 -m http.server {port}\"\n")
                .find("experiments/x.toml: point 0 ((single point)): mode = \"simulate\" runs gillab's own servers"),
            std::string::npos);
  EXPECT_NE(ErrorOf("mode = \"simulate\"\n[settings]\nserver = \"threaded\"\nprotocol = \"http\"\nclient = \"wrk\"\nconnections = 2\n")
                .find("client wrk cannot be simulated"),
            std::string::npos);
}

}  // namespace
}  // namespace gillab::experiments
