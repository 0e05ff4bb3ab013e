// experiment_test.cc — experiment files: sweep expansion, variants, overrides, errors.
#include "experiments/experiment.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "experiments/experiment_test_util.h"
#include "gil/error.h"

namespace gillab::experiments {
namespace {

constexpr const char* kConvoyLike = R"(
name = "convoy-like"
repetitions = 2
[settings]
think_us = 100
requests = 50
[sweep]
server = ["zmq", "blocking"]
variant = [
  { engine = "native" },
  { engine = "toy", policy = "newgil" },
  { label = "toy priority", engine = "toy", policy = "priority", lock_priority = { io = 1, cpu = 0 } },
]
cpu_threads = [0, 1]
)";

TEST(Experiment, ExpandsTheCartesianProductLastAxisFastest) {
  Experiment e = Parse(kConvoyLike);
  auto points = e.Points();
  ASSERT_EQ(points.size(), 2u * 3u * 2u);
  EXPECT_EQ(e.RunCount(), 24);
  EXPECT_EQ(points[0].Describe(), "server=zmq variant=native cpu_threads=0");
  EXPECT_EQ(points[1].Describe(), "server=zmq variant=native cpu_threads=1");
  EXPECT_EQ(points[2].Describe(), "server=zmq variant=toy newgil cpu_threads=0");
  EXPECT_EQ(points[6].settings.at("server"), "blocking");
  for (size_t i = 0; i < points.size(); ++i) EXPECT_EQ(points[i].id, static_cast<int>(i));
  // Fixed settings reach every point; unset ones keep their defaults.
  for (const auto& p : points) {
    EXPECT_EQ(p.settings.at("think_us"), "100");
    EXPECT_EQ(p.settings.at("requests"), "50");
    EXPECT_EQ(p.settings.at("switch_interval_us"), "5000");
  }
}

TEST(Experiment, VariantsBundleSettingsUnderALabel) {
  auto points = Parse(kConvoyLike).Points();
  EXPECT_EQ(points[0].variant, "native");
  EXPECT_EQ(points[0].settings.at("engine"), "native");
  EXPECT_EQ(points[2].variant, "toy newgil");  // default label: the values joined
  EXPECT_EQ(points[2].settings.at("policy"), "newgil");
  EXPECT_EQ(points[4].variant, "toy priority");
  EXPECT_EQ(points[4].settings.at("policy"), "priority");
  // A table of priorities becomes the canonical command-line text.
  EXPECT_EQ(points[4].settings.at("lock_priority"), "io=1,cpu=0");
  EXPECT_EQ(points[2].settings.at("lock_priority"), "");
}

TEST(Experiment, ScalarOverrideReplacesASweepAxis) {
  Experiment e = Parse(kConvoyLike, {"server=threaded", "requests=7"});
  auto points = e.Points();
  ASSERT_EQ(points.size(), 3u * 2u);
  for (const auto& p : points) {
    EXPECT_EQ(p.settings.at("server"), "threaded");
    EXPECT_EQ(p.settings.at("requests"), "7");
  }
  EXPECT_EQ(points[0].Describe(), "variant=native cpu_threads=0");
}

TEST(Experiment, ArrayOverrideReplacesOrAddsAnAxis) {
  Experiment e = Parse(kConvoyLike, {"cpu_threads=[0, 2, 4]", "message_bytes=[1, 64]"});
  auto points = e.Points();
  ASSERT_EQ(points.size(), 2u * 3u * 3u * 2u);
  EXPECT_EQ(points[0].Describe(), "server=zmq variant=native cpu_threads=0 message_bytes=1");
  EXPECT_EQ(points[3].settings.at("cpu_threads"), "2");
}

TEST(Experiment, VariantOverrideKeepsTheLabelledVariants) {
  Experiment e = Parse(kConvoyLike, {"variant=toy priority"});
  auto points = e.Points();
  ASSERT_EQ(points.size(), 2u * 2u);
  for (const auto& p : points) EXPECT_EQ(p.variant, "toy priority");
  auto two = Parse(kConvoyLike, {"variant=[\"native\", \"toy newgil\"]"}).Points();
  EXPECT_EQ(two.size(), 2u * 2u * 2u);
}

TEST(Experiment, OverrideWinsOverAVariant) {
  auto points = Parse(kConvoyLike, {"policy=ticket"}).Points();
  EXPECT_EQ(points[2].settings.at("policy"), "ticket");  // the variant said newgil
  EXPECT_EQ(points[4].settings.at("policy"), "ticket");
}

TEST(Experiment, OverridesTopLevelKeysAndBareStrings) {
  Experiment e = Parse(kConvoyLike, {"repetitions=5", "warmup=20", "server_cpus=0", "os_priority=cpu=nice:10"});
  EXPECT_EQ(e.repetitions, 5);
  EXPECT_EQ(e.warmup, 20);
  EXPECT_EQ(e.settings.at("server_cpus"), "0");
  EXPECT_EQ(e.settings.at("os_priority"), "cpu=nice:10");
}

TEST(Experiment, ResolvedTomlLoadsBackToTheSamePoints) {
  Experiment e = Parse(kConvoyLike, {"requests=9", "cpu_threads=[1, 0]"});
  Experiment again = ParseExperiment(e.ToToml(), "results/x/experiment.toml");
  auto a = e.Points(), b = again.Points();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].settings, b[i].settings) << i;
    EXPECT_EQ(a[i].variant, b[i].variant) << i;
    EXPECT_EQ(a[i].Describe(), b[i].Describe()) << i;
  }
  EXPECT_EQ(again.repetitions, e.repetitions);
  EXPECT_EQ(again.name, e.name);
}

TEST(Experiment, NoSweepIsOnePoint) {
  Experiment e = Parse("name = \"one\"\n[settings]\nserver = \"threaded\"\nconnections = 2\n");
  auto points = e.Points();
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].settings.at("connections"), "2");
  EXPECT_EQ(e.repetitions, 3);
}

TEST(ExperimentErrors, UnknownKeyNamesFileLineAndNearestKey) {
  std::string text = "name = \"x\"\n[settings]\nserver = \"blocking\"\ncpu_thread = 1\n";
  EXPECT_EQ(ErrorOf(text), "experiments/x.toml:4: unknown key 'cpu_thread' (did you mean 'cpu_threads'?)");
  EXPECT_EQ(ErrorOf("[sweep]\nthink = [1]\n"), "experiments/x.toml:2: unknown key 'think' (did you mean 'think_us'?)");
  EXPECT_EQ(ErrorOf("repetitons = 3\n"),
            "experiments/x.toml:1: unknown key 'repetitons' (did you mean 'repetitions'?)");
  EXPECT_EQ(ErrorOf("[settings]\nzzzzzzzz = 1\n"), "experiments/x.toml:2: unknown key 'zzzzzzzz'");
  EXPECT_EQ(ErrorOf("cpu_threads = 1\n"), "experiments/x.toml:1: 'cpu_threads' belongs under [settings] or [sweep]");
}

TEST(ExperimentErrors, WrongTypeNamesLineAndKey) {
  EXPECT_EQ(ErrorOf("[settings]\n\nrequests = \"many\"\n"),
            "experiments/x.toml:3: 'requests' must be an integer, not a string");
  EXPECT_EQ(ErrorOf("[sweep]\nserver = \"blocking\"\n"),
            "experiments/x.toml:2: sweep axis 'server' must be an array, not a string");
  EXPECT_EQ(ErrorOf("[sweep]\ncpu_threads = [0, \"one\"]\n"),
            "experiments/x.toml:2: 'cpu_threads' must be an integer, not a string");
  EXPECT_EQ(ErrorOf("repetitions = 0\n"), "experiments/x.toml:1: 'repetitions' must be at least 1");
}

TEST(ExperimentErrors, EmptySweepAndDuplicates) {
  EXPECT_EQ(ErrorOf("[sweep]\ncpu_threads = []\n"), "experiments/x.toml:2: empty sweep for 'cpu_threads'");
  EXPECT_EQ(ErrorOf("[sweep]\ncpu_threads = [1, 1]\n"),
            "experiments/x.toml:2: '1' appears twice in the sweep of 'cpu_threads'");
}

TEST(ExperimentErrors, BadValuesNameTheChoices) {
  std::string message = ErrorOf("[settings]\nserver = \"blockng\"\n");
  EXPECT_NE(message.find("experiments/x.toml:2: server must be one of"), std::string::npos) << message;
  EXPECT_NE(message.find("blocking"), std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\npolicy = \"fifo\"\n").find("x.toml:2: policy must be one of"), std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\ncpu_threads = -1\n").find("x.toml:2: cpu_threads must be at least 0"), std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\nhandler = \"no/such/file.gasm\"\n").find("x.toml:2: handler must be"), std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\nserver_cpus = \"0-\"\n").find("x.toml:2: bad CPU list"), std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\nlock_priority = \"gpu=1\"\n").find("x.toml:2:"), std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\nos_priority = \"cpu=nice:abc\"\n").find("x.toml:2:"), std::string::npos);
}

TEST(ExperimentErrors, ConflictsBetweenSettings) {
  EXPECT_NE(ErrorOf("[settings]\ncpu_threads = 1\n[sweep]\ncpu_threads = [0, 1]\n")
                .find("x.toml:4: 'cpu_threads' is both fixed in [settings] and swept in [sweep]"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[sweep]\npolicy = [\"newgil\"]\nvariant = [{ policy = \"ticket\" }]\n")
                .find("'policy' is both swept and set by variant 'ticket'"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\nengine = \"cpython\"\npolicy = \"priority\"\n").find("policy must be newgil"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\nrate = 100\nthink_us = 5\n").find("exclude each other"), std::string::npos);
  EXPECT_NE(ErrorOf("[settings]\nserver = \"blocking\"\nconnections = 2\n").find("connections must be 1"),
            std::string::npos);
}

TEST(ExperimentErrors, TomlSyntaxErrorHasTheLine) {
  std::string message = ErrorOf("name = \"x\"\n[settings\n");
  EXPECT_EQ(message.rfind("experiments/x.toml:2: ", 0), 0u) << message;
}

TEST(ExperimentErrors, OverridesNameTheArgument) {
  EXPECT_EQ(ErrorOf(kConvoyLike, {"cpu_thread=1"}), "-s cpu_thread=1: unknown key 'cpu_thread' (did you mean 'cpu_threads'?)");
  EXPECT_EQ(ErrorOf(kConvoyLike, {"requests"}), "-s requests: expected key=value");
  EXPECT_EQ(ErrorOf(kConvoyLike, {"requests=lots"}), "-s requests=lots: requests must be an integer (got 'lots')");
  EXPECT_EQ(ErrorOf(kConvoyLike, {"cpu_threads=[]"}), "-s cpu_threads=[]: empty sweep for 'cpu_threads'");
  EXPECT_NE(ErrorOf(kConvoyLike, {"variant=toy"}).find("no variant labelled 'toy'"), std::string::npos);
}

TEST(ExperimentErrors, UnreadableFile) {
  try {
    LoadExperiment("/nonexistent/x.toml");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read experiment file /nonexistent/x.toml"), std::string::npos);
  }
}

TEST(CpuList, ParsesRangesAndRejectsGarbage) {
  EXPECT_EQ(ParseCpuList(""), std::vector<int>{});
  EXPECT_EQ(ParseCpuList("1"), std::vector<int>{1});
  EXPECT_EQ(ParseCpuList("0-2,5"), (std::vector<int>{0, 1, 2, 5}));
  for (const char* bad : {"a", "1-", "2-1", "1,", ",1", "1;2"}) EXPECT_THROW(ParseCpuList(bad), UsageError) << bad;
}

TEST(NearestName, SuggestsOnlyCloseNames) {
  std::vector<std::string> names = {"cpu_threads", "think_us", "requests"};
  EXPECT_EQ(NearestName("cpu_thread", names), "cpu_threads");
  EXPECT_EQ(NearestName("request", names), "requests");
  EXPECT_EQ(NearestName("banana", names), "");
}

// Found by experiments/experiment_fuzzer.cc: 40^6 points in 774 bytes hung the loader in Points().
TEST(ExperimentErrors, HugeSweepIsRefusedBeforeItIsExpanded) {
  std::string text = "[sweep]\n";
  for (const char* key : {"cpu_threads", "work_units", "message_bytes", "think_us", "switch_interval_us"}) {
    text += std::string(key) + " = [";
    for (int i = 1; i <= 40; ++i) text += std::to_string(i) + ",";
    text += "]\n";
  }
  EXPECT_NE(ErrorOf(text).find("the sweep has more than 10000 points"), std::string::npos);
  EXPECT_NE(ErrorOf("", {"cpu_threads=[1,2,3,4,5,6,7,8,9,10,11]", "work_units=[1,2,3,4,5,6,7,8,9,10]",
                         "think_us=[1,2,3,4,5,6,7,8,9,10]", "message_bytes=[1,2,3,4,5,6,7,8,9,10]"})
                .find("the sweep has more than 10000 points"),
            std::string::npos);
}

// Found by experiments/experiment_fuzzer.cc: 2^32 repetitions wrapped to 0 runs.
TEST(ExperimentErrors, CountsBeyondIntAreRefusedNotWrapped) {
  EXPECT_EQ(ErrorOf("repetitions = 4294967296\n"), "experiments/x.toml:1: 'repetitions' must be at most 2147483647");
  EXPECT_EQ(ErrorOf("warmup_runs = 4294967295\n"), "experiments/x.toml:1: 'warmup_runs' must be at most 2147483647");
  EXPECT_EQ(ErrorOf("", {"repetitions=4294967296"}), "-s repetitions=4294967296: 'repetitions' must be an integer from 1 to 2147483647");
  EXPECT_EQ(Parse("warmup = 4294967296\n").warmup, int64_t{4294967296});
}

}  // namespace
}  // namespace gillab::experiments
