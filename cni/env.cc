#include "env.h"

#include <set>
#include <vector>

#include "common/utf8.h"
#include "config.h"

namespace skiff::cni {
namespace {

// Keeps <containerID>:<ifname>.json within a 255-byte file name.
constexpr size_t kMaxContainerIdLen = 200;

CniError env_error(std::string msg) { return CniError{kInvalidEnv, std::move(msg), ""}; }

const std::set<std::string>& known_args() {
    static const std::set<std::string> k = {"IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME",
                                            "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"};
    return k;
}

CniStatus parse_args(Env& env) {
    std::vector<std::pair<std::string, std::string>> pairs;
    size_t pos = 0;
    const std::string& s = env.args_raw;
    while (pos <= s.size() && !s.empty()) {
        size_t end = s.find(';', pos);
        std::string item = s.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        if (!item.empty()) {
            auto eq = item.find('=');
            if (eq == std::string::npos || eq == 0)
                return env_error("CNI_ARGS: invalid item '" + item + "' (want KEY=VALUE)");
            pairs.emplace_back(item.substr(0, eq), item.substr(eq + 1));
        }
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    bool ignore_unknown = false;
    for (const auto& [k, v] : pairs)
        if (k == "IgnoreUnknown") ignore_unknown = (v == "1" || v == "true" || v == "True");
    std::string unknown;
    for (const auto& [k, v] : pairs) {
        if (known_args().count(k))
            env.args[k] = v;
        else
            unknown += (unknown.empty() ? "" : ", ") + k;
    }
    if (!unknown.empty() && !ignore_unknown)
        return CniError{kUnsupportedField, "CNI_ARGS: unknown keys " + unknown + " (set IgnoreUnknown=1 to allow)", ""};
    return {};
}

}  // namespace

CniResult<Env> parse_env(const Getenv& getenv) {
    auto get = [&](const char* k) -> std::string {
        const char* v = getenv(k);
        return v ? v : "";
    };
    Env env;
    env.command_name = get("CNI_COMMAND");
    static const std::map<std::string, Command> cmds = {{"ADD", Command::Add},       {"DEL", Command::Del},
                                                        {"CHECK", Command::Check},   {"GC", Command::Gc},
                                                        {"STATUS", Command::Status}, {"VERSION", Command::Version}};
    auto it = cmds.find(env.command_name);
    if (env.command_name.empty()) return env_error("CNI_COMMAND is not set");
    if (it == cmds.end()) return env_error("CNI_COMMAND '" + env.command_name + "' is not a CNI command");
    env.command = it->second;
    env.container_id = get("CNI_CONTAINERID");
    env.netns = get("CNI_NETNS");
    env.ifname = get("CNI_IFNAME");
    env.path = get("CNI_PATH");
    env.args_raw = get("CNI_ARGS");

    const bool per_container =
        env.command == Command::Add || env.command == Command::Del || env.command == Command::Check;
    if (!per_container) return env;

    std::string missing;
    if (env.container_id.empty()) missing += " CNI_CONTAINERID";
    if (env.ifname.empty()) missing += " CNI_IFNAME";
    if (env.netns.empty() && env.command != Command::Del) missing += " CNI_NETNS";
    if (!missing.empty()) return env_error("required environment variables missing:" + missing);
    if (env.container_id.size() > kMaxContainerIdLen)
        return env_error("CNI_CONTAINERID is longer than " + std::to_string(kMaxContainerIdLen) + " characters");
    if (!valid_cni_name(env.container_id))
        return env_error("CNI_CONTAINERID '" + env.container_id + "' has invalid characters");
    if (auto p = ifname_problem(env.ifname); !p.empty()) return env_error("CNI_IFNAME: " + p);
    if (!env.netns.empty() && env.netns[0] != '/')
        return env_error("CNI_NETNS '" + env.netns + "' is not an absolute path");
    // The result names the netns as the interface's sandbox: JSON, UTF-8.
    if (!valid_utf8(env.netns)) return env_error("CNI_NETNS is not valid UTF-8");
    if (auto r = parse_args(env); !r) return r.error();
    return env;
}

}  // namespace skiff::cni
