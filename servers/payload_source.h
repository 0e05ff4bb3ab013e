// payload_source.h — the load client's request payloads (design §5): fresh
// pseudo-random bytes without paying for S random bytes per request: a window
// at a random offset into a random pool, its first 8 bytes replaced by a
// fresh random word, so no two consecutive requests are equal. Deterministic
// per seed (splitmix64), so a simulated client (sim/sim_serve.cc) sends the
// same bytes as `gillab load` would.
//
//   PayloadSource payloads(256, seed);
//   std::string request;
//   payloads.Next(request);   // 256 bytes
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace gillab::servers {

class PayloadSource {
 public:
  static constexpr size_t kSlackBytes = 4096;
  PayloadSource(size_t bytes, uint64_t seed) : bytes_(bytes), state_(seed) {
    pool_.resize(bytes + kSlackBytes);
    for (size_t i = 0; i < pool_.size(); i += 8) {
      const uint64_t word = NextWord();
      std::memcpy(pool_.data() + i, &word, std::min<size_t>(8, pool_.size() - i));
    }
  }
  void Next(std::string& out) {
    const size_t offset = NextWord() % kSlackBytes;
    out.assign(pool_.data() + offset, bytes_);
    const uint64_t word = NextWord();
    std::memcpy(out.data(), &word, std::min<size_t>(8, bytes_));
  }

 private:
  uint64_t NextWord() {  // splitmix64
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t bytes_;
  uint64_t state_;
  std::string pool_;
};

}  // namespace gillab::servers
