#include "interp/assembler.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>

#include <fmt/core.h>

#include "interp/natives.h"
#include "interp/verifier.h"

namespace gillab::interp {
namespace {

constexpr size_t kMaxIndex = 0xffff;  // operand a is 16 bits
constexpr size_t kMaxCodeLength = size_t{1} << 24;

struct Token {
  enum Kind { kIdent, kLabel, kInt, kString } kind;
  std::string text;   // identifier / label name / string bytes / source text of an int
  int64_t value = 0;  // kInt
  int col = 0;
};

std::string Describe(const Token& t) {
  switch (t.kind) {
    case Token::kIdent: return fmt::format("'{}'", t.text);
    case Token::kLabel: return fmt::format("label '{}:'", t.text);
    case Token::kInt: return fmt::format("integer {}", t.text);
    case Token::kString: return "a string";
  }
  return "?";
}

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '.'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
std::string Printable(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x21 && u < 0x7f ? fmt::format("'{}'", c) : fmt::format("byte 0x{:02x}", u);
}

class Assembler {
 public:
  Assembler(std::string_view source, const std::string& name) : source_(source) {
    program_ = std::make_shared<Program>();
    program_->source_name = name;
  }

  std::shared_ptr<Program> Run() {
    int line_no = 0;
    size_t start = 0;
    while (start <= source_.size()) {
      size_t end = source_.find('\n', start);
      const bool last = end == std::string_view::npos;
      if (last) end = source_.size();
      std::string_view line = source_.substr(start, end - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      ++line_no;
      line_ = line_no;
      Statement(Lex(line));
      eof_ = {line_no, static_cast<int>(line.size()) + 1};
      if (last) break;
      start = end + 1;
    }
    if (fn_ != nullptr) {
      FailAt(eof_.line, eof_.col,
             fmt::format("expected 'end' to close function '{}' (opened at line {}), found the end of the file",
                         fn_->name, fn_->declared_at.line));
    }
    ResolveCalls();
    ResolveGlobals();
    Verify(*program_);
    return program_;
  }

 private:
  struct LabelRef {
    size_t pc;
    std::string name;
    SourcePos pos;
  };
  struct CallRef {
    size_t function;
    size_t pc;
    std::string name;
    SourcePos pos;
  };

  [[noreturn]] void FailAt(int line, int col, const std::string& message) const {
    throw AsmError(program_->source_name, line, col, message);
  }
  [[noreturn]] void Fail(int col, const std::string& message) const { FailAt(line_, col, message); }

  // --- lexer: one line into tokens ---------------------------------------
  std::vector<Token> Lex(std::string_view s) {
    std::vector<Token> out;
    size_t i = 0;
    while (i < s.size()) {
      const char c = s[i];
      const int col = static_cast<int>(i) + 1;
      if (c == ' ' || c == '\t') {
        ++i;
      } else if (c == ';' || c == '#') {
        break;
      } else if (IsIdentStart(c)) {
        size_t j = i;
        while (j < s.size() && IsIdentChar(s[j])) ++j;
        Token t{Token::kIdent, std::string(s.substr(i, j - i)), 0, col};
        if (j < s.size() && s[j] == ':') {
          t.kind = Token::kLabel;
          ++j;
        }
        out.push_back(std::move(t));
        i = j;
      } else if (IsDigit(c) || ((c == '-' || c == '+') && i + 1 < s.size() && IsDigit(s[i + 1]))) {
        i = LexInt(s, i, out);
      } else if (c == '"') {
        i = LexString(s, i, out);
      } else {
        Fail(col, fmt::format("unexpected {}", Printable(c)));
      }
    }
    return out;
  }

  size_t LexInt(std::string_view s, size_t i, std::vector<Token>& out) {
    const int col = static_cast<int>(i) + 1;
    const size_t begin = i;
    bool negative = false;
    if (s[i] == '-' || s[i] == '+') negative = s[i++] == '-';
    int base = 10;
    if (s[i] == '0' && i + 1 < s.size() && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
      base = 16;
      i += 2;
    }
    const size_t digits = i;
    uint64_t magnitude = 0;
    bool overflow = false;
    while (i < s.size() && (base == 16 ? HexValue(s[i]) >= 0 : IsDigit(s[i]))) {
      const uint64_t d = static_cast<uint64_t>(HexValue(s[i]));
      if (magnitude > (UINT64_MAX - d) / static_cast<uint64_t>(base)) overflow = true;
      magnitude = magnitude * static_cast<uint64_t>(base) + d;
      ++i;
    }
    if (i == digits) Fail(col, "expected hex digits after '0x'");
    if (i < s.size() && IsIdentChar(s[i])) Fail(static_cast<int>(i) + 1, fmt::format("unexpected {} in a number", Printable(s[i])));
    const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
    if (overflow || magnitude > limit) Fail(col, "integer literal out of the int64 range");
    const int64_t value = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
    out.push_back(Token{Token::kInt, std::string(s.substr(begin, i - begin)), value, col});
    return i;
  }

  size_t LexString(std::string_view s, size_t i, std::vector<Token>& out) {
    const int col = static_cast<int>(i) + 1;
    std::string bytes;
    ++i;
    while (true) {
      if (i >= s.size()) Fail(col, "unterminated string: expected a closing '\"' on the same line");
      const char c = s[i];
      if (c == '"') break;
      if (c != '\\') {
        bytes += c;
        ++i;
        continue;
      }
      if (i + 1 >= s.size()) Fail(static_cast<int>(i) + 1, "expected an escape after '\\'");
      const char e = s[i + 1];
      switch (e) {
        case 'n': bytes += '\n'; break;
        case 't': bytes += '\t'; break;
        case 'r': bytes += '\r'; break;
        case '0': bytes += '\0'; break;
        case '\\': bytes += '\\'; break;
        case '"': bytes += '"'; break;
        case 'x': {
          const int hi = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
          const int lo = i + 3 < s.size() ? HexValue(s[i + 3]) : -1;
          if (hi < 0 || lo < 0) Fail(static_cast<int>(i) + 1, "expected two hex digits after '\\x'");
          bytes += static_cast<char>(hi * 16 + lo);
          i += 2;
          break;
        }
        default:
          Fail(static_cast<int>(i) + 1, fmt::format("unknown escape '\\{}': expected one of \\n \\t \\r \\0 \\\\ \\\" \\xHH", e));
      }
      i += 2;
    }
    out.push_back(Token{Token::kString, std::move(bytes), 0, col});
    return i + 1;
  }

  // --- parser: one statement ---------------------------------------------
  void Statement(const std::vector<Token>& tokens) {
    size_t i = 0;
    if (!tokens.empty() && tokens[0].kind == Token::kLabel) {
      DefineLabel(tokens[0]);
      i = 1;
    }
    if (i == tokens.size()) return;
    const Token& head = tokens[i];
    if (head.kind != Token::kIdent) {
      Fail(head.col, fmt::format("expected an instruction, 'func', 'var', 'global' or 'end', found {}", Describe(head)));
    }
    if (head.text == "func") return Func(tokens, i);
    if (head.text == "global") return Global(tokens, i);
    if (head.text == "var") return Var(tokens, i);
    if (head.text == "end") return End(tokens, i);
    Instruction(tokens, i);
  }

  void Func(const std::vector<Token>& tokens, size_t i) {
    const Token& head = tokens[i];
    if (fn_ != nullptr) {
      Fail(head.col, fmt::format("expected 'end' before 'func': function '{}' (line {}) is still open", fn_->name,
                                 fn_->declared_at.line));
    }
    if (i != 0) Fail(head.col, "a label cannot precede 'func'");
    if (i + 1 >= tokens.size() || tokens[i + 1].kind != Token::kIdent) {
      Fail(i + 1 < tokens.size() ? tokens[i + 1].col : head.col + 4, "expected a function name after 'func'");
    }
    const Token& name = tokens[i + 1];
    if (program_->Find(name.text) != nullptr) Fail(name.col, fmt::format("function '{}' is already defined", name.text));
    if (program_->functions.size() > kMaxIndex) Fail(name.col, "too many functions (at most 65536)");
    program_->functions.emplace_back();
    fn_ = &program_->functions.back();
    fn_->name = name.text;
    fn_->declared_at = {line_, head.col};
    labels_.clear();
    label_refs_.clear();
    for (size_t k = i + 2; k < tokens.size(); ++k) {
      if (tokens[k].kind != Token::kIdent) Fail(tokens[k].col, fmt::format("expected a parameter name, found {}", Describe(tokens[k])));
      DeclareLocal(tokens[k]);
    }
    fn_->nparams = fn_->nlocals;
  }

  // `global NAME...`: outside functions, before or after them; initial value 0 (heap.h).
  void Global(const std::vector<Token>& tokens, size_t i) {
    const Token& head = tokens[i];
    if (fn_ != nullptr) Fail(head.col, fmt::format("'global' inside function '{}': declare globals outside functions", fn_->name));
    if (i != 0) Fail(head.col, "a label cannot precede 'global'");
    if (i + 1 == tokens.size()) Fail(head.col + 7, "expected a global name after 'global'");
    for (size_t k = i + 1; k < tokens.size(); ++k) {
      const Token& t = tokens[k];
      if (t.kind != Token::kIdent) Fail(t.col, fmt::format("expected a global name, found {}", Describe(t)));
      auto& globals = program_->globals;
      if (std::find(globals.begin(), globals.end(), t.text) != globals.end()) {
        Fail(t.col, fmt::format("global '{}' is already declared", t.text));
      }
      if (globals.size() > kMaxIndex) Fail(t.col, "too many globals (at most 65536)");
      globals.push_back(t.text);
    }
  }

  void Var(const std::vector<Token>& tokens, size_t i) {
    RequireFunction(tokens[i]);
    if (i + 1 == tokens.size()) Fail(tokens[i].col + 3, "expected a local name after 'var'");
    for (size_t k = i + 1; k < tokens.size(); ++k) {
      if (tokens[k].kind != Token::kIdent) Fail(tokens[k].col, fmt::format("expected a local name, found {}", Describe(tokens[k])));
      DeclareLocal(tokens[k]);
    }
  }

  void DeclareLocal(const Token& t) {
    for (const std::string& n : fn_->local_names) {
      if (n == t.text) Fail(t.col, fmt::format("local '{}' is already declared", t.text));
    }
    if (fn_->local_names.size() >= kMaxIndex) Fail(t.col, "too many locals (at most 65535)");
    fn_->local_names.push_back(t.text);
    fn_->nlocals = static_cast<int>(fn_->local_names.size());
  }

  void End(const std::vector<Token>& tokens, size_t i) {
    RequireFunction(tokens[i]);
    if (i + 1 < tokens.size()) Fail(tokens[i + 1].col, fmt::format("unexpected {} after 'end'", Describe(tokens[i + 1])));
    for (const LabelRef& ref : label_refs_) {
      auto it = labels_.find(ref.name);
      if (it == labels_.end()) {
        FailAt(ref.pos.line, ref.pos.col, fmt::format("label '{}' is not defined in function '{}'", ref.name, fn_->name));
      }
      if (it->second == fn_->code.size()) {
        FailAt(ref.pos.line, ref.pos.col, fmt::format("label '{}' is not followed by an instruction", ref.name));
      }
      fn_->code[ref.pc].b = static_cast<int32_t>(static_cast<int64_t>(it->second) - static_cast<int64_t>(ref.pc) - 1);
    }
    // Fusing shrinks the code: the calls not yet resolved must follow their
    // instruction to its new pc, or ResolveCalls patches another one.
    const std::vector<size_t> old_to_new = Fuse(*fn_);
    const size_t this_function = program_->functions.size() - 1;
    for (CallRef& ref : call_refs_) {
      if (ref.function == this_function) ref.pc = old_to_new[ref.pc];
    }
    fn_ = nullptr;
  }

  void RequireFunction(const Token& t) const {
    if (fn_ == nullptr) Fail(t.col, fmt::format("{} outside a function: expected 'func NAME' first", Describe(t)));
  }

  void DefineLabel(const Token& t) {
    RequireFunction(t);
    if (!labels_.emplace(t.text, fn_->code.size()).second) Fail(t.col, fmt::format("label '{}' is already defined", t.text));
  }

  void Instruction(const std::vector<Token>& tokens, size_t i) {
    const Token& head = tokens[i];
    std::optional<Op> op;
    for (int k = 0; k < kOpCount; ++k) {
      if (kOpInfo[k].mnemonic == head.text) op = static_cast<Op>(k);
    }
    if (!op) Fail(head.col, fmt::format("unknown instruction '{}'", head.text));
    RequireFunction(head);
    if (fn_->code.size() >= kMaxCodeLength) Fail(head.col, "function too long");
    const OpInfo& info = InfoOf(*op);
    const Token* operand = i + 1 < tokens.size() ? &tokens[i + 1] : nullptr;
    size_t used = 1;
    Instr ins{*op, 0, 0};
    auto expect = [&](const char* what) {
      Fail(operand != nullptr ? operand->col : head.col + static_cast<int>(head.text.size()) + 1,
           fmt::format("expected {} after '{}'{}", what, head.text, operand ? ", found " + Describe(*operand) : ""));
    };
    switch (info.operand) {
      case Operand::kNone:
        used = 0;
        break;
      case Operand::kInt:  // push
        if (operand == nullptr || (operand->kind != Token::kInt && operand->kind != Token::kString)) {
          expect("an integer or a string");
        }
        if (operand->kind == Token::kInt && operand->value >= INT32_MIN && operand->value <= INT32_MAX) {
          ins.b = static_cast<int32_t>(operand->value);
        } else {
          ins = Instr{Op::CONST, 0, Constant(*operand), 0};
        }
        break;
      case Operand::kConst:
        if (operand == nullptr || (operand->kind != Token::kInt && operand->kind != Token::kString)) {
          expect("an integer or a string");
        }
        ins.a = Constant(*operand);
        break;
      case Operand::kLocal:
        if (operand == nullptr) expect("a local");
        ins.a = Local(*operand);
        break;
      case Operand::kLocalInt: {
        if (operand == nullptr) expect("a local");
        ins.a = Local(*operand);
        const Token* amount = i + 2 < tokens.size() ? &tokens[i + 2] : nullptr;
        if (amount == nullptr || amount->kind != Token::kInt) {
          Fail(amount ? amount->col : operand->col + static_cast<int>(operand->text.size()) + 1,
               fmt::format("expected an integer after '{} {}'", head.text, operand->text));
        }
        if (amount->value < INT32_MIN || amount->value > INT32_MAX) Fail(amount->col, "expected an int32 increment");
        ins.b = static_cast<int32_t>(amount->value);
        used = 2;
        break;
      }
      case Operand::kLabel:
        if (operand == nullptr || operand->kind != Token::kIdent) expect("a label");
        label_refs_.push_back({fn_->code.size(), operand->text, {line_, operand->col}});
        break;
      case Operand::kFunc:
        if (operand == nullptr || operand->kind != Token::kIdent) expect("a function name");
        // Until ResolveCalls, b names the call's entry of call_refs_: the
        // instruction's pc moves when Fuse shortens the function.
        ins.b = static_cast<int32_t>(call_refs_.size());
        call_refs_.push_back({program_->functions.size() - 1, fn_->code.size(), operand->text, {line_, operand->col}});
        break;
      case Operand::kGlobal:
        if (operand == nullptr || operand->kind != Token::kIdent) expect("a global name");
        ins.a = GlobalUse(*operand);
        break;
      case Operand::kFusedLI:
      case Operand::kFusedLL:
      case Operand::kFusedPair:
        Fail(head.col, fmt::format("'{}' is made by the assembler from 'load', then 'push' or 'load', then a jump or "
                                   "arithmetic: write those",
                                   head.text));
      case Operand::kNative: {
        if (operand == nullptr || operand->kind != Token::kIdent) expect("a native name");
        auto id = FindNative(operand->text);
        if (!id) Fail(operand->col, fmt::format("unknown native '{}'{}", operand->text, NativeList()));
        ins.a = static_cast<uint16_t>(*id);
        break;
      }
    }
    if (i + 1 + used < tokens.size()) {
      const Token& extra = tokens[i + 1 + used];
      Fail(extra.col, used == 0 ? fmt::format("'{}' takes no operand, found {}", head.text, Describe(extra))
                                : fmt::format("unexpected {} after the operand of '{}'", Describe(extra), head.text));
    }
    fn_->code.push_back(ins);
    fn_->pos.push_back({line_, head.col});
  }

  // The superinstructions of opcodes.h: `load a; push c; j<cc> L` and
  // `load a; load c; j<cc> L` become one jump when no jump lands on the second
  // or third instruction. Jump offsets are recomputed after the code shrinks.
  // Returns each old pc's new pc.
  static std::vector<size_t> Fuse(Function& f) {
    const size_t n = f.code.size();
    std::vector<int64_t> target(n, -1);  // absolute targets of the jumps
    std::vector<bool> is_target(n + 1, false);
    for (size_t pc = 0; pc < n; ++pc) {
      if (!IsJump(f.code[pc].op)) continue;
      target[pc] = static_cast<int64_t>(pc) + 1 + f.code[pc].b;
      if (target[pc] >= 0 && target[pc] <= static_cast<int64_t>(n)) is_target[static_cast<size_t>(target[pc])] = true;
    }
    auto fused_op = [](Op jump, bool immediate) -> std::optional<Op> {
      const int k = static_cast<int>(jump) - static_cast<int>(Op::JEQ);
      if (k < 0 || k > static_cast<int>(Op::JGE) - static_cast<int>(Op::JEQ)) return std::nullopt;
      return static_cast<Op>(static_cast<int>(immediate ? Op::JEQ_LI : Op::JEQ_LL) + k);
    };
    auto pair_op = [](Op arith) -> std::optional<Op> {
      switch (arith) {
        case Op::ADD: return Op::ADD_LL;
        case Op::SUB: return Op::SUB_LL;
        case Op::MUL: return Op::MUL_LL;
        case Op::DIV: return Op::DIV_LL;
        case Op::MOD: return Op::MOD_LL;
        default: return std::nullopt;
      }
    };
    std::vector<Instr> code;
    std::vector<SourcePos> pos;
    std::vector<int64_t> code_target;
    std::vector<size_t> old_to_new(n + 1, 0);
    for (size_t pc = 0; pc < n;) {
      old_to_new[pc] = code.size();
      if (pc + 2 < n && f.code[pc].op == Op::LOAD && !is_target[pc + 1] && !is_target[pc + 2]) {
        const Instr& second = f.code[pc + 1];
        const bool immediate = second.op == Op::PUSH && second.b >= INT8_MIN && second.b <= INT8_MAX;
        const bool local = second.op == Op::LOAD && second.a <= UINT8_MAX;
        const std::optional<Op> op = fused_op(f.code[pc + 2].op, immediate);
        const std::optional<Op> pair = local ? pair_op(f.code[pc + 2].op) : std::nullopt;
        if (pair && !op) {
          code.push_back(Instr{*pair, static_cast<int8_t>(static_cast<uint8_t>(second.a)), f.code[pc].a, 0});
          pos.push_back(f.pos[pc + 2]);
          code_target.push_back(-1);
          old_to_new[pc + 1] = old_to_new[pc + 2] = old_to_new[pc];
          pc += 3;
          continue;
        }
        if ((immediate || local) && op) {
          const auto c = immediate ? static_cast<int8_t>(second.b) : static_cast<int8_t>(static_cast<uint8_t>(second.a));
          code.push_back(Instr{*op, c, f.code[pc].a, 0});
          pos.push_back(f.pos[pc + 2]);
          code_target.push_back(target[pc + 2]);
          old_to_new[pc + 1] = old_to_new[pc + 2] = old_to_new[pc];
          pc += 3;
          continue;
        }
      }
      code.push_back(f.code[pc]);
      pos.push_back(f.pos[pc]);
      code_target.push_back(target[pc]);
      ++pc;
    }
    old_to_new[n] = code.size();
    for (size_t pc = 0; pc < code.size(); ++pc) {
      if (code_target[pc] < 0 || code_target[pc] > static_cast<int64_t>(n)) continue;  // the verifier reports it
      const auto to = static_cast<int64_t>(old_to_new[static_cast<size_t>(code_target[pc])]);
      code[pc].b = static_cast<int32_t>(to - static_cast<int64_t>(pc) - 1);
    }
    f.code = std::move(code);
    f.pos = std::move(pos);
    return old_to_new;
  }

  uint16_t Local(const Token& t) const {
    if (t.kind == Token::kInt) {
      if (t.value < 0 || t.value >= fn_->nlocals) {
        Fail(t.col, fmt::format("local index {} out of range: function '{}' has {} local(s)", t.value, fn_->name,
                                fn_->nlocals));
      }
      return static_cast<uint16_t>(t.value);
    }
    if (t.kind == Token::kIdent) {
      for (size_t k = 0; k < fn_->local_names.size(); ++k) {
        if (fn_->local_names[k] == t.text) return static_cast<uint16_t>(k);
      }
      Fail(t.col, fmt::format("unknown local '{}': declare it with 'var' or as a parameter", t.text));
    }
    Fail(t.col, fmt::format("expected a local name or index, found {}", Describe(t)));
  }

  uint16_t Constant(const Token& t) {
    const bool is_int = t.kind == Token::kInt;
    const std::string key = is_int ? "i" + std::to_string(t.value) : "s" + t.text;
    auto it = constant_index_.find(key);
    if (it != constant_index_.end()) return it->second;
    if (program_->constants.size() > kMaxIndex) Fail(t.col, "too many constants (at most 65536)");
    if (is_int) {
      program_->constants.push_back(Slot::Int(t.value));
    } else {
      Str* s = new Str{-1, std::make_shared<const std::string>(t.text)};
      program_->const_strings.push_back(s);
      program_->constants.push_back(Slot{s, 0});
    }
    const auto index = static_cast<uint16_t>(program_->constants.size() - 1);
    constant_index_.emplace(key, index);
    return index;
  }

  static std::string NativeList() {
    std::string out = " (natives:";
    for (const NativeInfo& n : kNativeInfo) out += fmt::format(" {}", n.name);
    return out + ")";
  }

  // Until the end of the file a global operand is an index into global_uses_
  // (it travels with its instruction through Fuse); globals may be declared
  // anywhere outside functions, before or after their use.
  uint16_t GlobalUse(const Token& t) {
    auto [it, added] = global_use_index_.emplace(t.text, global_uses_.size());
    if (added) {
      if (global_uses_.size() > kMaxIndex) Fail(t.col, "too many globals (at most 65536)");
      global_uses_.push_back({t.text, {line_, t.col}});
    }
    return static_cast<uint16_t>(it->second);
  }

  void ResolveGlobals() {
    const auto& globals = program_->globals;
    std::vector<uint16_t> index(global_uses_.size());
    for (size_t u = 0; u < global_uses_.size(); ++u) {
      const auto& [name, pos] = global_uses_[u];
      auto it = std::find(globals.begin(), globals.end(), name);
      if (it == globals.end()) FailAt(pos.line, pos.col, fmt::format("unknown global '{}': declare it with 'global {}'", name, name));
      index[u] = static_cast<uint16_t>(it - globals.begin());
    }
    for (Function& f : program_->functions) {
      for (Instr& ins : f.code) {
        if (InfoOf(ins.op).operand == Operand::kGlobal) ins.a = index[ins.a];
      }
    }
  }

  void ResolveCalls() {
    std::vector<Instr*> sites(call_refs_.size(), nullptr);
    for (Function& f : program_->functions) {
      for (Instr& ins : f.code) {
        if (ins.op == Op::CALL) sites[static_cast<size_t>(ins.b)] = &ins;
      }
    }
    for (size_t r = 0; r < call_refs_.size(); ++r) {
      const CallRef& ref = call_refs_[r];
      Instr& ins = *sites[r];
      ins.b = 0;
      bool found = false;
      for (size_t k = 0; k < program_->functions.size(); ++k) {
        if (program_->functions[k].name == ref.name) {
          ins.a = static_cast<uint16_t>(k);
          found = true;
          break;
        }
      }
      if (found) continue;
      if (auto id = FindNative(ref.name)) {
        ins = Instr{Op::NATIVE, 0, static_cast<uint16_t>(*id), 0};
        continue;
      }
      FailAt(ref.pos.line, ref.pos.col, fmt::format("unknown function '{}': not defined in this file nor a native", ref.name));
    }
  }

  std::string_view source_;
  std::shared_ptr<Program> program_;
  Function* fn_ = nullptr;  // the open function; stable: functions only grow while it is closed
  int line_ = 0;
  SourcePos eof_{1, 1};
  std::unordered_map<std::string, size_t> labels_;
  std::vector<LabelRef> label_refs_;
  std::vector<CallRef> call_refs_;
  std::vector<std::pair<std::string, SourcePos>> global_uses_;  // first use of each global name
  std::unordered_map<std::string, size_t> global_use_index_;
  std::map<std::string, uint16_t> constant_index_;
};

}  // namespace

std::shared_ptr<const Program> Assemble(std::string_view source, const std::string& source_name) {
  return Assembler(source, source_name).Run();
}

std::shared_ptr<const Program> AssembleFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UsageError(fmt::format("cannot read program '{}': is a directory", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot read program '{}': {}", path, std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw UsageError(fmt::format("cannot read program '{}': read error", path));
  return Assemble(text.str(), path);
}

}  // namespace gillab::interp
