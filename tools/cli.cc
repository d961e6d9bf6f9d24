#include "cli.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>

namespace skiff::ctl {

Error explain(const Error& e, const Options& o) {
    if (e.code == EPERM || e.code == EACCES)
        return Error{e.code,
                     "permission denied reading " + o.pin_path + ": skiffctl needs root (CAP_BPF and CAP_SYS_ADMIN)"};
    if (e.code == ENOENT)
        return Error{e.code,
                     "no skiff maps in " + o.pin_path + " (is the datapath loaded on this node? use --pin-path)"};
    return e;
}

Result<std::map<std::string, std::string>> parse_flags(const std::vector<std::string>& args,
                                                       const std::vector<std::string>& known) {
    std::map<std::string, std::string> out;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.rfind("--", 0) != 0) return Error::invalid("unexpected argument '" + a + "'");
        std::string name = a.substr(2);
        if (std::find(known.begin(), known.end(), name) == known.end())
            return Error::invalid("unknown option '" + a + "'");
        if (i + 1 >= args.size()) return Error::invalid("option '" + a + "' needs a value");
        out[name] = args[++i];
    }
    return out;
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> width;
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], r[i].size());
        }
    std::string out;
    for (const auto& r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

static void usage(const std::vector<Noun>& nouns) {
    std::cerr << "Usage: skiffctl [--pin-path DIR] [-j|--json] [-p|--pretty] NOUN VERB [ARGS]\n\n";
    for (const auto& n : nouns)
        for (const auto& v : n.verbs) std::cerr << "  skiffctl " << n.name << " " << v.name << " " << v.usage << "\n";
    std::cerr << "\nNouns and verbs may be abbreviated to unambiguous prefixes.\n";
}

int run_cli(int argc, char** argv, const std::vector<Noun>& nouns) {
    Options o;
    std::vector<std::string> words;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-j" || a == "--json")
            o.json = true;
        else if (a == "-p" || a == "--pretty")
            o.json = o.pretty = true;
        else if (a == "--pin-path" && i + 1 < argc)
            o.pin_path = argv[++i];
        else if (a.rfind("--pin-path=", 0) == 0)
            o.pin_path = a.substr(11);
        else if (a == "-h" || a == "--help" || a == "help") {
            usage(nouns);
            return 0;
        } else
            words.push_back(a);
    }
    auto fail = [&](const std::string& msg) {
        if (o.json)
            std::cout << nlohmann::json{{"error", msg}}.dump(o.pretty ? 2 : -1) << "\n";
        else
            std::cerr << "Error: " << msg << "\n";
        return 1;
    };
    if (words.empty()) {
        usage(nouns);
        return 1;
    }
    auto noun = match(nouns, words[0], "object");
    if (!noun) return fail(noun.error().message);
    const Verb* verb = nullptr;
    size_t next = 1;
    if (words.size() > 1) {
        if (auto v = match((*noun)->verbs, words[1], "command for " + (*noun)->name); v) {
            verb = *v;
            next = 2;
        } else if ((*noun)->default_verb.empty()) {
            return fail(v.error().message);
        }
    }
    if (!verb) {
        if ((*noun)->default_verb.empty()) return fail("missing command for " + (*noun)->name);
        verb = *match((*noun)->verbs, (*noun)->default_verb, "command");
    }
    std::vector<std::string> args(words.begin() + static_cast<long>(next), words.end());
    if (verb->usage.empty() && !args.empty()) return fail("unexpected argument '" + args[0] + "'");
    auto out = verb->run(o, args);
    if (!out) return fail(out.error().message);
    if (out->streamed) return 0;
    if (o.json)
        std::cout << out->doc.dump(o.pretty ? 2 : -1) << "\n";
    else
        std::cout << out->text(out->doc);
    return 0;
}

}  // namespace skiff::ctl
