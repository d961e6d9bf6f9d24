#include "config.h"

#include <cctype>

#include "common/utf8.h"
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
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[')
            max_depth = std::max(max_depth, ++depth);
        else if (c == '}' || c == ']')
            --depth;
    }
    return max_depth;
}

CniError invalid(std::string msg) { return CniError{kInvalidConfig, std::move(msg), ""}; }

// The value of key, or nullptr when absent. A key that is present is
// never taken as absent: null is a wrong type like any other, not a way to
// ask for the default.
CniResult<const json*> member(const json& j, const char* key, json::value_t want, const char* type_name) {
    auto it = j.find(key);
    if (it == j.end()) return static_cast<const json*>(nullptr);
    const bool ok = it->type() == want || (want == json::value_t::number_integer && it->is_number_integer());
    if (!ok) return invalid(std::string("network config: '") + key + "' must be " + type_name);
    return &*it;
}

// Reads key into out when present; a wrong type is a config error.
CniStatus get_string(const json& j, const char* key, std::string& out, bool required = false) {
    auto v = member(j, key, json::value_t::string, "a string");
    if (!v) return v.error();
    if (!*v) {
        if (required) return invalid(std::string("network config: missing required key '") + key + "'");
        return {};
    }
    out = (*v)->get<std::string>();
    return {};
}

CniStatus get_prefix(const json& j, const char* key, std::optional<Ipv4Prefix>& out) {
    std::string s;
    if (auto r = get_string(j, key, s); !r) return r;
    if (s.empty()) return {};
    if (s.find(':') != std::string::npos)
        return CniError{
            kUnsupportedField,
            std::string("network config: '") + key + "' is IPv6 (" + s + "); skiff supports IPv4 only for now", ""};
    auto p = Ipv4Prefix::parse(s);
    if (!p) return invalid(std::string("network config: '") + key + "': " + p.error().message);
    out = *p;
    return {};
}

CniStatus check_path(const char* key, const std::string& p) {
    for (char c : p)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return invalid(std::string("network config: '") + key +
                           "' contains a control character (NUL, newline, ...)");
    if (p.empty() || p[0] != '/')
        return invalid(std::string("network config: '") + key + "' must be an absolute path, got '" + p + "'");
    if (p.find("/../") != std::string::npos || (p.size() >= 3 && p.compare(p.size() - 3, 3, "/..") == 0))
        return invalid(std::string("network config: '") + key + "' must not contain '..'");
    if (p.size() > 1024) return invalid(std::string("network config: '") + key + "' is too long");
    return {};
}

CniResult<json> decode_json(const std::string& bytes) {
    if (bytes.size() > kMaxConfigBytes) return CniError{kDecodeFailure, "config on stdin is larger than 1 MiB", ""};
    if (json_depth(bytes) > kMaxConfigDepth)
        return CniError{kDecodeFailure,
                        "config on stdin is nested deeper than " + std::to_string(kMaxConfigDepth) + " levels", ""};
    json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return CniError{kDecodeFailure, "config on stdin is not valid JSON", ""};
    return j;
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
        // The kernel takes "eth%d" as a template and picks a name itself.
        if (c == '%') return "interface name '" + s + "' contains '%'";
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return "interface name '" + s + "' contains a control character";
    }
    // The name travels back in the result JSON, which can only hold UTF-8.
    if (!valid_utf8(s)) return "interface name is not valid UTF-8";
    return "";
}

std::string NetConf::ipam_type() const {
    if (ipam.is_object() && ipam.contains("type") && ipam["type"].is_string()) return ipam["type"].get<std::string>();
    return "";
}

StdinConfig decode_stdin(const std::string& bytes) {
    StdinConfig in{!bytes.empty(), decode_json(bytes), ""};
    if (in.decoded && in.decoded->is_object()) {
        auto it = in.decoded->find("cniVersion");
        if (it != in.decoded->end() && it->is_string() && version_supported(it->get<std::string>()))
            in.version = it->get<std::string>();
    }
    return in;
}

CniResult<NetConf> parse_netconf(const StdinConfig& in) {
    if (!in.decoded) return in.decoded.error();
    const json& j = *in.decoded;
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

    using T = json::value_t;
    auto require_agent = member(j, "requireAgent", T::boolean, "a boolean");
    if (!require_agent) return require_agent.error();
    if (*require_agent) c.require_agent = (*require_agent)->get<bool>();
    auto mtu = member(j, "mtu", T::number_integer, "an integer");
    if (!mtu) return mtu.error();
    if (*mtu) {
        const json& m = **mtu;  // read as it is written: no value wraps
        const bool in_range = m.is_number_unsigned() ? m.get<uint64_t>() >= 68 && m.get<uint64_t>() <= 65535
                                                     : m.get<int64_t>() >= 68 && m.get<int64_t>() <= 65535;
        if (!in_range) return invalid("network config: 'mtu' " + m.dump() + " is outside 68-65535");
        c.mtu = m.get<unsigned>();
    }
    auto ipam = member(j, "ipam", T::object, "an object");
    if (!ipam) return ipam.error();
    if (*ipam) {
        c.ipam = **ipam;
        auto t = c.ipam_type();
        if (t.empty()) return invalid("network config: 'ipam' needs a string 'type'");
        if (!valid_cni_name(t) || t.find('/') != std::string::npos)
            return invalid("network config: invalid ipam type '" + t + "'");
        if (!c.type.empty() && t == c.type)
            return invalid("network config: ipam type '" + t + "' is this plugin itself (a delegation loop)");
    }
    auto dns = member(j, "dns", T::object, "an object");
    if (!dns) return dns.error();
    if (*dns) c.dns = **dns;
    auto prev = member(j, "prevResult", T::object, "an object");
    if (!prev) return prev.error();
    if (*prev) c.prev_result = **prev;

    if (!c.delegated_ipam() && !c.pod_cidr)
        return invalid("network config: 'podCIDR' is required unless an 'ipam' plugin is configured");
    if (c.pod_cidr && c.pod_cidr->len() > 30)
        return invalid("network config: 'podCIDR' " + c.pod_cidr->str() + " is too small (at most /30)");
    if (c.pod_cidr && c.cluster_cidr &&
        !(c.cluster_cidr->contains(c.pod_cidr->network()) && c.cluster_cidr->len() <= c.pod_cidr->len()))
        return invalid("network config: 'podCIDR' " + c.pod_cidr->str() + " is not inside 'clusterCIDR' " +
                       c.cluster_cidr->str());

    for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
        auto list = member(j, key, json::value_t::array, "an array");
        if (!list) return list.error();
        if (!*list) continue;
        for (const auto& a : **list) {
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
