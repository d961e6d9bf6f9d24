// skiffctl's small command framework: bpftool-style `noun verb` dispatch
// with unambiguous prefixes, -j/-p JSON output and JSON errors.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace skiff::ctl {

struct Options {
    std::string pin_path = "/sys/fs/bpf/skiff";
    bool json = false;
    bool pretty = false;
};

// A command returns the JSON document it shows; `text` renders it for
// humans when JSON output was not asked for.
struct Output {
    nlohmann::json doc;
    std::function<std::string(const nlohmann::json&)> text;
    bool streamed = false;  // the command printed as it went (monitor)
};

using Handler = std::function<Result<Output>(const Options&, const std::vector<std::string>& args)>;

struct Verb {
    std::string name;
    std::string usage;
    Handler run;
};

struct Noun {
    std::string name;
    std::vector<Verb> verbs;
    std::string default_verb;  // used when no verb is given (e.g. "stats")
};

// Finds the single entry whose name starts with `word`; an exact match wins.
template <typename T>
Result<const T*> match(const std::vector<T>& items, const std::string& word, const std::string& what) {
    const T* found = nullptr;
    std::string candidates;
    for (const auto& it : items) {
        if (it.name == word) return &it;
        if (it.name.rfind(word, 0) == 0) {
            candidates += (candidates.empty() ? "" : ", ") + it.name;
            found = found ? reinterpret_cast<const T*>(-1) : &it;
        }
    }
    if (!found) return Error::invalid("unknown " + what + " '" + word + "'");
    if (found == reinterpret_cast<const T*>(-1))
        return Error::invalid("ambiguous " + what + " '" + word + "': " + candidates);
    return found;
}

int run_cli(int argc, char** argv, const std::vector<Noun>& nouns);

// Error text for failures opening pinned objects (privileges, no maps).
Error explain(const Error& e, const Options& o);

// Command-line options of a verb: "--name value" pairs and flags.
Result<std::map<std::string, std::string>> parse_flags(const std::vector<std::string>& args,
                                                       const std::vector<std::string>& known);

// Table rendering helper: rows of cells, first row is the header.
std::string table(const std::vector<std::vector<std::string>>& rows);

}  // namespace skiff::ctl
