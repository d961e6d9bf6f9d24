#include "kube_client.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>

#include "common/files.h"
#include "common/log.h"

namespace skiff::agent {
namespace {

constexpr size_t kMaxLine = 64u << 20;  // one watch event

std::string trim(std::string s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
}

}  // namespace

struct KubeClient::Request {
    const char* method = "GET";
    std::string path, body, content_type;
    const LineFn* on_line = nullptr;  // set: a stream
    std::stop_token stop;
    std::chrono::milliseconds timeout{0};
};

KubeClient::KubeClient(KubeConfig cfg) : cfg_(std::move(cfg)) {
    while (!cfg_.server.empty() && cfg_.server.back() == '/') cfg_.server.pop_back();
}

std::string KubeClient::bearer(bool force_reread) {
    std::lock_guard lk(token_mu_);
    if (cfg_.token_file.empty()) return cfg_.token;
    auto now = std::chrono::steady_clock::now();
    if (force_reread || !token_ever_read_ || now - token_read_ >= cfg_.token_reread) {
        token_read_ = now;
        token_ever_read_ = true;
        auto t = read_file(cfg_.token_file, 64 << 10);
        if (t)
            token_ = trim(*t);
        else
            log::warn("kubernetes token: " + t.error().message + " (keeping the last one read)");
    }
    return token_.empty() ? cfg_.token : token_;
}

Result<KubeResponse> KubeClient::perform(Request& r) {
    HttpClientRequest q;
    q.method = r.method;
    q.url = cfg_.server + r.path;
    q.headers.push_back("Accept: application/json");
    if (std::string tok = bearer(false); !tok.empty()) q.headers.push_back("Authorization: Bearer " + tok);
    if (!r.content_type.empty()) q.headers.push_back("Content-Type: " + r.content_type);
    q.body = r.body;
    q.connect_timeout = cfg_.connect_timeout;
    q.timeout = r.on_line ? r.timeout : cfg_.request_timeout;
    // Compressed lists, but never compressed watches: a compressor may hold
    // events back until it has a block's worth.
    q.compressed = !r.on_line;
    q.tls = {cfg_.ca_file,         cfg_.ca_data,         cfg_.client_cert_file, cfg_.client_cert_data,
             cfg_.client_key_file, cfg_.client_key_data, cfg_.insecure};
    std::string buf;  // a partial line
    bool too_big = false;
    if (r.on_line) {
        q.stop = r.stop;
        q.on_data = [&](std::string_view chunk) {
            buf.append(chunk);
            size_t start = 0;
            for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
                std::string_view line(buf.data() + start, nl - start);
                if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
                if (!line.empty() && !(*r.on_line)(line)) return false;
            }
            buf.erase(0, start);
            if (buf.size() > kMaxLine) return too_big = true, false;
            return true;
        };
    }
    SKIFF_ASSIGN_OR_RETURN(HttpClientResponse resp, http_request(q));
    if (too_big) return Error{EMSGSIZE, std::string(r.method) + " " + q.url + ": response too large"};
    return KubeResponse{resp.status, std::move(resp.body)};
}

Result<KubeResponse> KubeClient::with_auth_retry(Request& r) {
    std::string before = bearer(false);
    SKIFF_ASSIGN_OR_RETURN(KubeResponse resp, perform(r));
    // A rotated token: read the file again now, and retry once if it changed.
    if (resp.status == 401 && !cfg_.token_file.empty() && bearer(true) != before) return perform(r);
    return resp;
}

Result<KubeResponse> KubeClient::get(const std::string& path) {
    Request r;
    r.path = path;
    return with_auth_retry(r);
}

Result<KubeResponse> KubeClient::patch(const std::string& path, const std::string& body,
                                       const std::string& content_type) {
    Request r;
    r.method = "PATCH";
    r.path = path;
    r.body = body;
    r.content_type = content_type;
    return with_auth_retry(r);
}

Result<KubeResponse> KubeClient::stream(const std::string& path, const LineFn& on_line, std::stop_token stop,
                                        std::chrono::milliseconds timeout) {
    if (stop.stop_requested()) return KubeResponse{};
    Request r;
    r.path = path;
    r.on_line = &on_line;
    r.stop = std::move(stop);
    r.timeout = timeout;
    return with_auth_retry(r);
}

// ---- configuration ----

Result<KubeConfig> in_cluster_config(const InClusterPaths& p) {
    auto env = [](const char* k) {
        const char* v = std::getenv(k);
        return std::string(v ? v : "");
    };
    std::string host = p.host.empty() ? env("KUBERNETES_SERVICE_HOST") : p.host;
    std::string port = p.port.empty() ? env("KUBERNETES_SERVICE_PORT") : p.port;
    if (host.empty() || port.empty())
        return Error::invalid("not running in a pod: KUBERNETES_SERVICE_HOST/PORT are not set");
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    if (!path_exists(p.token)) return Error{ENOENT, "service account token " + p.token + " is missing"};
    if (!path_exists(p.ca)) return Error{ENOENT, "service account CA " + p.ca + " is missing"};
    KubeConfig c;
    c.server = "https://" + host + ":" + port;
    c.ca_file = p.ca;
    c.token_file = p.token;
    return c;
}

namespace {

YAML::Node undefined() { return YAML::Node(YAML::NodeType::Undefined); }

// n[key] when n is a mapping holding key, else an undefined node (never a
// zombie, which throws when looked at).
YAML::Node child(const YAML::Node& n, const char* key) {
    return n.IsDefined() && n.IsMap() && n[key].IsDefined() ? n[key] : undefined();
}

YAML::Node named(const YAML::Node& list, const std::string& name) {
    if (list.IsDefined() && list.IsSequence())
        for (const auto& e : list)
            if (e.IsMap() && e["name"] && e["name"].IsScalar() && e["name"].Scalar() == name) return e;
    return undefined();
}

std::string scalar(const YAML::Node& n, const char* key) {
    const YAML::Node v = child(n, key);
    return v.IsDefined() && v.IsScalar() ? v.Scalar() : "";
}

Result<KubeConfig> parse_kubeconfig_throwing(const std::string& text, const std::string& base_dir,
                                             const std::string& want) {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return Error::invalid("kubeconfig is not a YAML mapping");
    std::string ctx_name = want.empty() ? scalar(root, "current-context") : want;
    if (ctx_name.empty()) return Error::invalid("kubeconfig has no current-context");
    const YAML::Node ctx = named(child(root, "contexts"), ctx_name);
    if (!ctx.IsDefined()) return Error::invalid("kubeconfig has no context '" + ctx_name + "'");
    std::string cluster_name = scalar(child(ctx, "context"), "cluster");
    std::string user_name = scalar(child(ctx, "context"), "user");
    const YAML::Node cl = child(named(child(root, "clusters"), cluster_name), "cluster");
    if (!cl.IsDefined()) return Error::invalid("kubeconfig has no cluster '" + cluster_name + "'");
    auto rel = [&](std::string f) { return f.empty() || f[0] == '/' || base_dir.empty() ? f : base_dir + "/" + f; };
    KubeConfig c;
    c.server = scalar(cl, "server");
    if (c.server.empty()) return Error::invalid("kubeconfig cluster '" + cluster_name + "' has no server");
    c.insecure = scalar(cl, "insecure-skip-tls-verify") == "true";
    c.ca_file = rel(scalar(cl, "certificate-authority"));
    if (auto d = scalar(cl, "certificate-authority-data"); !d.empty()) {
        auto pem = base64_decode(d);
        if (!pem) return pem.error().wrap("kubeconfig certificate-authority-data");
        c.ca_data = std::move(*pem);
    }
    const YAML::Node u = child(named(child(root, "users"), user_name), "user");
    if (!user_name.empty() && !u.IsDefined()) return Error::invalid("kubeconfig has no user '" + user_name + "'");
    if (child(u, "exec").IsDefined() || child(u, "auth-provider").IsDefined())
        return Error::invalid("kubeconfig user '" + user_name + "' uses exec/auth-provider, which is not supported");
    c.token = scalar(u, "token");
    c.token_file = rel(scalar(u, "tokenFile"));
    c.client_cert_file = rel(scalar(u, "client-certificate"));
    c.client_key_file = rel(scalar(u, "client-key"));
    for (auto [key, out] : {std::pair{"client-certificate-data", &c.client_cert_data},
                            std::pair{"client-key-data", &c.client_key_data}}) {
        if (auto d = scalar(u, key); !d.empty()) {
            auto pem = base64_decode(d);
            if (!pem) return pem.error().wrap(std::string("kubeconfig ") + key);
            *out = std::move(*pem);
        }
    }
    return c;
}

}  // namespace

Result<KubeConfig> parse_kubeconfig(const std::string& yaml, const std::string& base_dir, const std::string& context) {
    try {
        return parse_kubeconfig_throwing(yaml, base_dir, context);
    } catch (const std::exception& e) {
        return Error::invalid(std::string("kubeconfig: ") + e.what());
    }
}

Result<KubeConfig> load_kubeconfig(const std::string& path, const std::string& context) {
    auto text = read_file(path, 16u << 20);
    if (!text) return text.error();
    auto slash = path.rfind('/');
    auto c = parse_kubeconfig(*text, slash == std::string::npos ? "." : path.substr(0, slash), context);
    if (!c) return c.error().wrap(path);
    return c;
}

}  // namespace skiff::agent
