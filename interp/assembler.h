// assembler.h — turns `.gasm` text into a verified Program.
//
// The language, one statement per line; `;` or `#` starts a comment:
//
//   func NAME [PARAM...]      opens a function; the parameters are its first locals
//   var NAME...               declares more locals (before their first use)
//   LABEL:                    a jump target, local to its function (may prefix an instruction)
//   MNEMONIC [OPERAND]        one instruction of opcodes.h
//   end                       closes the function
//
// Operands: integers in decimal or 0x hex with an optional sign; strings in
// double quotes with the escapes \n \t \r \0 \\ \" \xHH; locals by name or
// index; labels and functions by name (functions may be used before they are
// defined). `push` takes any literal (beyond int32 or a string it becomes a
// CONST); `call NAME` calls a function of the program, or else the native of
// that name; `inc LOCAL N` adds N to a local. Every function ends with `ret`
// or `jmp` (control must not fall off its end).
//
// Errors are AsmError, `FILE:LINE:COL: message`, at the first mistake.
//
//   func main n          ; count n down to 0 and return it
//   top: load n
//        push 0
//        jle done
//        inc n -1
//        jmp top
//   done: load n
//        ret
//   end
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "interp/asm_error.h"
#include "interp/program.h"

namespace gillab::interp {

// Assembles and verifies `source`; `source_name` is the FILE of error messages.
std::shared_ptr<const Program> Assemble(std::string_view source, const std::string& source_name);
// Reads and assembles a file; an unreadable file is a UsageError.
std::shared_ptr<const Program> AssembleFile(const std::string& path);

}  // namespace gillab::interp
