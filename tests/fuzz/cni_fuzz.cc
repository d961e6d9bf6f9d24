// libFuzzer target over the CNI plugin's input handling: the CNI_*
// environment (CNI_ARGS included), the network config on stdin, prevResult,
// and the result/error writers. It follows run_plugin()'s flow (cni/plugin.cc)
// up to the point where a command would touch the system, and never touches
// the file system, the network or the kernel.
//
// Input format (see docs/fuzzing.md; seeds in corpus/ are readable):
//
//   CNI_COMMAND=ADD            <- environment, one KEY=VALUE per line,
//   CNI_CONTAINERID=abc           until the first empty line
//   CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=x
//                              <- empty line
//   {"cniVersion":"1.1.0",...} <- the rest: the bytes on stdin
//
// Findings: a sanitizer report, an exception escaping (libFuzzer reports it
// as a crash via std::terminate), or abort() from check_*() below when an
// output is not a JSON object, or the plugin could not read its own result
// back as prevResult.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/config.h"
#include "cni/env.h"
#include "cni/errors.h"
#include "cni/result.h"
#include "cni/version.h"
#include "common/ipv4.h"
#if __has_include("common/utf8.h")
#include "common/utf8.h"
#define SKIFF_FUZZ_HAVE_UTF8 1
#endif

namespace {

using nlohmann::json;
namespace cni = skiff::cni;

[[noreturn]] void fail(const char* what, const std::string& text) {
    std::fprintf(stderr, "cni_fuzz: %s\n--- output (%zu bytes) ---\n%s\n---\n", what, text.size(), text.c_str());
    std::abort();
}

// What the plugin prints (or hands to a delegate): wire() + "\n". It must be
// one line of valid (UTF-8) JSON holding an object.
json check_wire(const json& j) {
    std::string s = cni::wire(j);
    if (s.find('\n') != std::string::npos) fail("wire() output spans lines", s);
    json back = json::parse(s + "\n", nullptr, /*allow_exceptions=*/false);
    if (back.is_discarded()) fail("wire() output is not valid JSON", s);
    if (!back.is_object()) fail("wire() output is not a JSON object", s);
    // Serialising what we read back must be stable (nothing left to replace).
    if (cni::wire(back) != s) fail("wire() output does not round-trip", s);
    return back;
}

void check_error(const cni::CniError& e, const std::string& version) {
    json back = check_wire(cni::error_to_json(e, version));
    if (!back.contains("cniVersion") || !back["cniVersion"].is_string() || !back.contains("code") ||
        !back["code"].is_number_integer() || !back.contains("msg") || !back["msg"].is_string())
        fail("error JSON lacks cniVersion/code/msg", cni::wire(back));
    if (back["code"].get<long long>() != e.code) fail("error JSON has the wrong code", cni::wire(back));
    if (!e.details.empty() && !(back.contains("details") && back["details"].is_string()))
        fail("error JSON dropped details", cni::wire(back));
}

// A result we print must be readable by parse_result: the runtime hands it
// back as prevResult for CHECK and DEL.
void check_result(const cni::CniResultModel& m, const std::string& version) {
    json back = check_wire(cni::result_to_json(m, version));
    for (const char* k : {"interfaces", "ips", "routes"})
        if (!back.contains(k) || !back[k].is_array()) fail("result JSON lacks an array", cni::wire(back));
    if (back["cniVersion"] != version) fail("result JSON in the wrong version", cni::wire(back));
    auto again = cni::parse_result(back);
    if (!again) fail("parse_result rejects our own result", cni::wire(back));
    if (cni::wire(cni::result_to_json(*again, version)) != cni::wire(back))
        fail("result does not survive a prevResult round trip", cni::wire(back));
}

bool command_allowed(cni::Command cmd, const std::string& version) {
    switch (cmd) {
        case cni::Command::Check: return cni::version_at_least(version, "0.4.0");
        case cni::Command::Gc:
        case cni::Command::Status: return cni::version_at_least(version, "1.1.0");
        default: return true;
    }
}

// cmd_version(): the VERSION answer.
void version_answer(const cni::StdinConfig& in) {
    const std::string version = in.version.empty() ? std::string(cni::kLatestVersion) : in.version;
    if (in.present && !in.decoded) return check_error(in.decoded.error(), version);
    json out = {{"cniVersion", version}, {"supportedVersions", json::array()}};
    for (auto v : cni::kSupportedVersions) out["supportedVersions"].push_back(std::string(v));
    check_wire(out);
}

// The result ADD builds around its own interfaces (cmd_add), fixed apart from
// what comes from the environment and the config.
cni::CniResultModel our_result(const cni::Env& env, const cni::NetConf& conf) {
    cni::CniResultModel ours;
    const int mtu = static_cast<int>(conf.mtu);
    ours.interfaces.push_back({"skf1a2b3c4d5e6", "02:00:00:00:00:01", mtu, ""});
    ours.interfaces.push_back({env.ifname, "02:00:00:00:00:02", mtu, env.netns});
    ours.ips.push_back({"10.244.1.2/32", "169.254.1.1", 1});
    ours.routes.push_back({"0.0.0.0/0", "169.254.1.1", {}, {}, {}, {}, {}});
    if (conf.dns.is_object()) ours.dns = conf.dns;
    return ours;
}

// What DEL and CHECK take from prevResult: an IPv4 address hint.
void prev_result_hints(const cni::CniResultModel& prev) {
    for (const auto& ip : prev.ips) {
        auto p = skiff::Ipv4Prefix::parse(ip.address, /*allow_host_bits=*/true);
        if (p) (void)p->addr().str();
    }
}

// ipam_add() with `out` as the delegated IPAM plugin's answer.
void delegated_ipam_answer(const json& out, const std::string& version) {
    auto res = cni::parse_result(out);
    if (!res) return check_error(res.error(), version);
    for (const auto& ip : res->ips) {
        if (ip.address.find(':') != std::string::npos) continue;
        if (auto p = skiff::Ipv4Prefix::parse(ip.address, true); p) return;
    }
    check_error(cni::CniError{cni::kInternal, "ipam plugin returned no IPv4 address", cni::wire(out)}, version);
}

void one_input(const uint8_t* data, size_t size) {
    const std::string in(reinterpret_cast<const char*>(data), size);
    size_t split = in.find("\n\n");
    const std::string env_part = in.substr(0, split);
    const std::string stdin_text = split == std::string::npos ? "" : in.substr(split + 2);

    std::map<std::string, std::string> vars;
    for (size_t pos = 0; pos < env_part.size();) {
        size_t nl = env_part.find('\n', pos);
        std::string line = env_part.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? env_part.size() : nl + 1;
        if (auto eq = line.find('='); eq != std::string::npos) vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
    // Like getenv(3): values end at a NUL byte.
    cni::Getenv getenv = [&vars](const char* k) -> const char* {
        auto it = vars.find(k);
        return it == vars.end() ? nullptr : it->second.c_str();
    };

    // Error writers with arbitrary bytes (invalid UTF-8, NULs, control
    // characters) in msg, details and even the version.
    {
        const int code = size ? data[0] * 7 - 3 : cni::kInternal;
        cni::CniError raw{code, stdin_text, env_part};
        // One writer call per input (this is the costly part): the version
        // is "", a supported one, or CNI_IFNAME's raw bytes.
        std::string version;
        const size_t pick = size % (cni::kSupportedVersions.size() + 2);
        if (pick > 0 && pick <= cni::kSupportedVersions.size())
            version = cni::kSupportedVersions[pick - 1];
        else if (auto it = vars.find("CNI_IFNAME"); pick > 0 && it != vars.end())
            version = it->second;
        check_error(raw, version);
    }

#ifdef SKIFF_FUZZ_HAVE_UTF8
    // skiff::valid_utf8 (what env/config validation uses) against
    // nlohmann's strict writer, which throws on exactly the ill-formed input.
    for (const auto& [k, v] : vars) {
        bool strict_ok = true;
        try {
            (void)json(v).dump();
        } catch (const json::type_error&) {
            strict_ok = false;
        }
        if (skiff::valid_utf8(v) != strict_ok) fail("valid_utf8 disagrees with nlohmann on a value", v);
    }
#endif

    // run_plugin(): stdin decoded once, at the stdin_conf; errors answer in
    // stdin_conf.version (the config's, when readable and supported).
    const cni::StdinConfig stdin_conf = cni::decode_stdin(stdin_text);
    if (stdin_conf.present != !stdin_text.empty()) fail("decode_stdin: present is wrong", stdin_text);
    if (!stdin_conf.version.empty() && !cni::version_supported(stdin_conf.version))
        fail("decode_stdin: an unsupported version", stdin_text);
    auto env = cni::parse_env(getenv);
    if (!env) {
        check_error(env.error(), stdin_conf.version);
        return;
    }
    if (env->command == cni::Command::Version) return version_answer(stdin_conf);

    auto conf = cni::parse_netconf(stdin_conf);
    if (!conf) {
        check_error(conf.error(), stdin_conf.version);
        return;
    }
    if (stdin_conf.version != conf->cni_version)
        fail("decode_stdin's version disagrees with parse_netconf", stdin_text);
    (void)conf->ipam_type();
    check_wire(conf->raw);  // the delegated IPAM plugin's stdin
    if (conf->delegated_ipam()) delegated_ipam_answer(conf->ipam, conf->cni_version);
    for (const auto& a : conf->valid_attachments) {
        (void)cni::valid_cni_name(a.container_id);
        (void)cni::ifname_problem(a.ifname);
    }
    if (!command_allowed(env->command, conf->cni_version)) {
        check_error(cni::CniError{cni::kIncompatibleVersion,
                                  env->command_name + " is not supported in CNI version " + conf->cni_version, ""},
                    conf->cni_version);
        return;
    }

    cni::CniResultModel prev;
    if (!conf->prev_result.is_null()) {
        auto p = cni::parse_result(conf->prev_result);
        if (!p) {
            check_error(p.error(), conf->cni_version);
            return;
        }
        prev = std::move(*p);
        prev_result_hints(prev);
    }
    // ADD's answer in the config's version, then in every version (the
    // writer must cope with any model in any dialect).
    auto merged = cni::merge_results(std::move(prev), our_result(*env, *conf));
    check_result(merged, conf->cni_version);
    for (auto v : cni::kSupportedVersions)
        if (v != conf->cni_version) check_result(merged, std::string(v));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    one_input(data, size);
    return 0;
}
