// http_fuzzer.cc — libFuzzer target for the http request path (http_parser.h,
// http_protocol.h), built with GILLAB_FUZZ=ON (scripts/fuzz).
//
// The input picks max_message_bytes and the chunks a byte stream arrives in.
// Checks, besides never crashing or leaking:
//   - chunking does not matter: the replies written for the stream fed in
//     arbitrary chunks are byte for byte those for the stream fed whole
//     (native parser, every request answered by an echo handler);
//   - every reply is a well-formed HTTP/1.1 response whose Content-Length
//     matches its body;
//   - the vm parser (interp/programs/http_request.gasm, on the toy VM) always
//     returns a verdict of the documented form (never a 500), and when both
//     parsers accept the first head they agree on its method, target and
//     Content-Length (a disagreement there is request smuggling). They may
//     differ on accepting: the program is stricter in places (http_parser.h).
//
//   build-fuzz/servers/http_fuzzer servers/fuzz_corpus/http
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gil/gil.h"
#include "interp/exec_model.h"
#include "interp/vm.h"
#include "servers/http_parser.h"
#include "servers/http_protocol.h"

namespace gillab::servers {
namespace {

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "http_fuzzer: check failed: %s\n", what);
  std::abort();
}

// Every handler echoes its request; no lock.
class EchoIo final : public IoThread {
 public:
  std::string Handle(std::string_view request) override { return std::string(request); }
  std::string HandleWith(size_t, std::string_view request) override { return std::string(request); }
  void BeginBlocking() override {}
  void EndBlocking() override {}
  uint64_t blocking_sections() const override { return 0; }
};

// Feeds `stream` in the given chunk sizes (the rest at the end) and returns
// what the protocol wrote; stops after a close.
std::string Serve(const std::string& stream, const std::vector<size_t>& chunks, uint64_t max_message_bytes) {
  ServerOptions options;
  options.protocol = "http";
  options.max_message_bytes = max_message_bytes;
  auto protocol = MakeHttpProtocol(options);
  EchoIo io;
  std::string outbox;
  size_t at = 0;
  for (size_t i = 0; at < stream.size(); ++i) {
    const size_t n = i < chunks.size() ? std::min(chunks[i], stream.size() - at) : stream.size() - at;
    protocol->Feed(stream.data() + at, n);
    at += n;
    if (protocol->Process(io, outbox, "fuzz") != StreamProtocol::Next::kKeepOpen) break;
  }
  return outbox;
}

void CheckResponses(const std::string& out) {
  size_t at = 0;
  while (at < out.size()) {
    Check(out.compare(at, 9, "HTTP/1.1 ") == 0, "a reply starts with HTTP/1.1");
    const size_t end = out.find("\r\n\r\n", at);
    Check(end != std::string::npos, "a reply head ends with a blank line");
    const size_t cl = out.find("Content-Length: ", at);
    Check(cl != std::string::npos && cl < end, "a reply has a Content-Length");
    const size_t length = std::strtoull(out.c_str() + cl + 16, nullptr, 10);
    Check(end + 4 + length <= out.size(), "a reply's body is all there");
    at = end + 4 + length;
  }
}

struct VmParser {
  VmParser()
      : model(interp::MakeExecModel("newgil")), me(model->Attach(gil::Role::kIo, "fuzz")),
        vm(interp::LoadProgram("http_request"), *model, *me) {
    model->Enter(*me);
  }
  std::unique_ptr<interp::ExecModel> model;
  std::unique_ptr<interp::ExecThread> me;
  interp::Vm vm;
};

void CompareParsers(const std::string& stream, uint64_t max_message_bytes) {
  static VmParser* parser = new VmParser();  // one VM for the whole run
  const HttpHeadResult found = FindHttpHeadEnd(stream);
  if (found.kind != HttpHeadResult::Kind::kHead) return;
  const size_t head_bytes = found.head.head_bytes;
  const interp::Value verdict = parser->vm.Call(
      "handle", {interp::Value::Bytes(stream.substr(0, head_bytes)), interp::Value::Int(0)});
  Check(!verdict.is_int(), "the vm parser returns bytes");
  const HttpHeadResult vm = ReadVmParserVerdict(verdict.as_bytes(), head_bytes, max_message_bytes);
  Check(vm.kind != HttpHeadResult::Kind::kError || vm.status != 500, "the vm parser's verdict has the documented form");
  const HttpHeadResult native = ParseHttpHeadNative(stream.substr(0, head_bytes), max_message_bytes);
  if (vm.kind == HttpHeadResult::Kind::kHead && native.kind == HttpHeadResult::Kind::kHead) {
    Check(vm.head.method == native.head.method, "both parsers read the same method");
    Check(vm.head.target == native.head.target, "both parsers read the same target");
    Check(vm.head.content_length == native.head.content_length, "both parsers read the same Content-Length");
    Check(vm.head.head_bytes == native.head.head_bytes, "both parsers end the head at the same byte");
  }
}

}  // namespace
}  // namespace gillab::servers

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gillab::servers;
  FuzzedDataProvider in(data, size);
  const uint64_t max_message_bytes = in.ConsumeIntegralInRange<uint64_t>(0, 4096);
  std::vector<size_t> chunks(in.ConsumeIntegralInRange<size_t>(0, 16));
  for (size_t& c : chunks) c = in.ConsumeIntegralInRange<size_t>(1, 64);
  const std::string stream = in.ConsumeRemainingBytesAsString();
  const std::string chunked = Serve(stream, chunks, max_message_bytes);
  const std::string whole = Serve(stream, {}, max_message_bytes);
  Check(chunked == whole, "the replies do not depend on how the bytes were chunked");
  CheckResponses(whole);
  CompareParsers(stream, max_message_bytes);
  return 0;
}
