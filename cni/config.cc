#include "config.h"

#include <cctype>

#include "version.h"

namespace skiff::cni {

using nlohmann::json;

int version_compare(std::string_view a, std::string_view b) {
    auto parts = [](std::string_view v) {
        std::array<int, 3> p{-1, -1, -1};
        size_t i = 0;
        for (int k = 0; k < 3 && i <= v.size(); ++k) {
            int n = 0;
            size_t start = i;
            while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) n = n * 10 + (v[i++] - '0');
            if (i == start) break;
            p[k] = n;
            if (i < v.size() && v[i] == '.') ++i;
        }
        return p;
    };
    auto pa = parts(a), pb = parts(b);
    for (int k = 0; k < 3; ++k)
        if (pa[k] != pb[k]) return pa[k] < pb[k] ? -1 : 1;
    return 0;
}

namespace {

// Deepest nesting of objects/arrays, ignoring brackets inside strings.
int json_depth(const std::string& s) {
    int depth = 0, max_depth = 0;
    bool in_str = false, esc = false;
    for (char c : s) {
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '{' || c == '[') max_depth = std::max(max_depth, ++depth);
        else if (c == '}' || c == ']') --depth;
    }
    return max_depth;
}

CniError invalid(std::string msg) { return CniError{kInvalidConfig, std::move(msg), ""}; }

// Reads key into out when present; a wrong type is a config error.
CniStatus get_string(const json& j, const char* key, std::string& out, bool required = false) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) return invalid(std::string("network config: missing required key '") + key + "'");
        return {};
    }
    if (!it->is_string()) return invalid(std::string("network config: '") + key + "' must be a string");
    out = it->get<std::string>();
    return {};
}

CniStatus get_prefix(const json& j, const char* key, std::optional<Ipv4Prefix>& out) {
    std::string s;
    if (auto r = get_string(j, key, s); !r) return r;
    if (s.empty()) return {};
    if (s.find(':') != std::string::npos)
        return CniError{kUnsupportedField, std::string("network config: '") + key + "' is IPv6 (" + s +
                                               "); skiff supports IPv4 only for now", ""};
    auto p = Ipv4Prefix::parse(s);
    if (!p) return invalid(std::string("network config: '") + key + "': " + p.error().message);
    out = *p;
    return {};
}

CniStatus check_path(const char* key, const std::string& p) {
    if (p.empty() || p[0] != '/')
        return invalid(std::string("network config: '") + key + "' must be an absolute path, got '" + p + "'");
    if (p.find("/../") != std::string::npos || (p.size() >= 3 && p.compare(p.size() - 3, 3, "/..") == 0))
        return invalid(std::string("network config: '") + key + "' must not contain '..'");
    if (p.size() > 1024) return invalid(std::string("network config: '") + key + "' is too long");
    return {};
}

}  // namespace

bool valid_cni_name(const std::string& s) {
    if (s.empty() || s.size() > 1024 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
    return true;
}

std::string ifname_problem(const std::string& s) {
    if (s.empty()) return "interface name is empty";
    if (s.size() > 15) return "interface name '" + s + "' is longer than 15 bytes";
    if (s == "." || s == "..") return "interface name '" + s + "' is not allowed";
    for (char c : s) {
        if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) || c == '\0')
            return "interface name '" + s + "' contains '/', ':' or whitespace";
    }
    return "";
}

std::string NetConf::ipam_type() const {
    if (ipam.is_object() && ipam.contains("type") && ipam["type"].is_string())
        return ipam["type"].get<std::string>();
    return "";
}

CniResult<json> decode_json(const std::string& bytes) {
    if (bytes.size() > kMaxConfigBytes)
        return CniError{kDecodeFailure, "config on stdin is larger than 1 MiB", ""};
    if (json_depth(bytes) > kMaxConfigDepth)
        return CniError{kDecodeFailure, "config on stdin is nested deeper than " +
                                            std::to_string(kMaxConfigDepth) + " levels", ""};
    json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return CniError{kDecodeFailure, "config on stdin is not valid JSON", ""};
    return j;
}

CniResult<NetConf> parse_netconf(const std::string& bytes) {
    auto decoded = decode_json(bytes);
    if (!decoded) return decoded.error();
    const json& j = *decoded;
    if (!j.is_object()) return CniError{kDecodeFailure, "config on stdin is not a JSON object", ""};

    NetConf c;
    c.raw = j;
    if (auto r = get_string(j, "cniVersion", c.cni_version, true); !r) return r.error();
    if (!version_supported(c.cni_version))
        return CniError{kIncompatibleVersion, "unsupported CNI version " + c.cni_version,
                        "supported: 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0"};
    if (auto r = get_string(j, "name", c.name, true); !r) return r.error();
    if (!valid_cni_name(c.name))
        return invalid("network config: invalid network name '" + c.name +
                       "' (letters, digits, '_', '.', '-'; starting with a letter or digit)");
    if (auto r = get_string(j, "type", c.type); !r) return r.error();
    if (auto r = get_prefix(j, "podCIDR", c.pod_cidr); !r) return r.error();
    if (auto r = get_prefix(j, "clusterCIDR", c.cluster_cidr); !r) return r.error();
    if (auto r = get_string(j, "pinPath", c.pin_path); !r) return r.error();
    if (auto r = get_string(j, "stateDir", c.state_dir); !r) return r.error();
    if (auto r = get_string(j, "logFile", c.log_file); !r) return r.error();
    if (auto r = check_path("pinPath", c.pin_path); !r) return r.error();
    if (auto r = check_path("stateDir", c.state_dir); !r) return r.error();
    if (!c.log_file.empty())
        if (auto r = check_path("logFile", c.log_file); !r) return r.error();

    if (auto it = j.find("requireAgent"); it != j.end() && !it->is_null()) {
        if (!it->is_boolean()) return invalid("network config: 'requireAgent' must be a boolean");
        c.require_agent = it->get<bool>();
    }
    if (auto it = j.find("mtu"); it != j.end() && !it->is_null()) {
        if (!it->is_number_integer()) return invalid("network config: 'mtu' must be an integer");
        auto m = it->get<long long>();
        if (m < 68 || m > 65535) return invalid("network config: 'mtu' " + std::to_string(m) + " is outside 68-65535");
        c.mtu = static_cast<unsigned>(m);
    }
    if (auto it = j.find("ipam"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) return invalid("network config: 'ipam' must be an object");
        c.ipam = *it;
        auto t = c.ipam_type();
        if (t.empty()) return invalid("network config: 'ipam' needs a string 'type'");
        if (!valid_cni_name(t) || t.find('/') != std::string::npos)
            return invalid("network config: invalid ipam type '" + t + "'");
    }
    if (auto it = j.find("dns"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) return invalid("network config: 'dns' must be an object");
        c.dns = *it;
    }
    if (auto it = j.find("prevResult"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) return invalid("network config: 'prevResult' must be an object");
        c.prev_result = *it;
    }

    if (!c.delegated_ipam() && !c.pod_cidr)
        return invalid("network config: 'podCIDR' is required unless an 'ipam' plugin is configured");
    if (c.pod_cidr && c.pod_cidr->len() > 30)
        return invalid("network config: 'podCIDR' " + c.pod_cidr->str() + " is too small (at most /30)");
    if (c.pod_cidr && c.cluster_cidr &&
        !(c.cluster_cidr->contains(c.pod_cidr->network()) && c.cluster_cidr->len() <= c.pod_cidr->len()))
        return invalid("network config: 'podCIDR' " + c.pod_cidr->str() + " is not inside 'clusterCIDR' " +
                       c.cluster_cidr->str());

    for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) continue;
        if (!it->is_array()) return invalid(std::string("network config: '") + key + "' must be an array");
        for (const auto& a : *it) {
            if (!a.is_object() || !a.contains("containerID") || !a["containerID"].is_string() ||
                !a.contains("ifname") || !a["ifname"].is_string())
                return invalid(std::string("network config: '") + key +
                               "' entries need string 'containerID' and 'ifname'");
            c.valid_attachments.push_back({a["containerID"].get<std::string>(), a["ifname"].get<std::string>()});
        }
    }
    return c;
}

}  // namespace skiff::cni
