#include "kube_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>

#include "common/files.h"
#include "common/log.h"

namespace skiff::agent {
namespace {

struct CurlFree {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using CurlPtr = std::unique_ptr<CURL, CurlFree>;
struct SlistFree {
    void operator()(curl_slist* s) const { curl_slist_free_all(s); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistFree>;

constexpr size_t kMaxBody = 256u << 20;   // a LIST page or an error body
constexpr size_t kMaxLine = 64u << 20;    // one watch event

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string trim(std::string s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
}

int errno_of(CURLcode c) {
    switch (c) {
        case CURLE_COULDNT_CONNECT: return ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST: return EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT: return ETIMEDOUT;
        default: return EIO;
    }
}

}  // namespace

struct KubeClient::Request {
    const char* method = "GET";
    std::string path, body, content_type;
    const LineFn* on_line = nullptr;  // set: a stream
    std::stop_token stop;
    std::chrono::milliseconds timeout{0};
    // Per attempt.
    CURL* h = nullptr;
    std::string buf;  // a partial line
    KubeResponse resp;
    bool ended_by_us = false, too_big = false;
};

static size_t on_write(char* p, size_t size, size_t n, void* ud) {
    auto* r = static_cast<KubeClient::Request*>(ud);
    const size_t len = size * n;
    long code = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &code);
    if (!r->on_line || code != 200) {
        if (r->resp.body.size() + len > kMaxBody) return r->too_big = true, 0;
        r->resp.body.append(p, len);
        return len;
    }
    if (r->stop.stop_requested()) return r->ended_by_us = true, 0;
    r->buf.append(p, len);
    size_t start = 0;
    for (size_t nl; (nl = r->buf.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string_view line(r->buf.data() + start, nl - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty() && !(*r->on_line)(line)) return r->ended_by_us = true, 0;
    }
    r->buf.erase(0, start);
    if (r->buf.size() > kMaxLine) return r->too_big = true, 0;
    return len;
}

struct MultiFree {
    void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
using MultiPtr = std::unique_ptr<CURLM, MultiFree>;

// Runs a transfer on a multi handle so that a stop request (from another
// thread) wakes it at once rather than at curl's next progress tick.
static CURLcode perform_stoppable(CURL* c, KubeClient::Request& r) {
    MultiPtr m(curl_multi_init());
    if (!m || curl_multi_add_handle(m.get(), c) != CURLM_OK) return CURLE_OUT_OF_MEMORY;
    CURLcode rc = CURLE_OK;
    {
        std::stop_callback wake(r.stop, [mp = m.get()] { curl_multi_wakeup(mp); });
        for (int running = 1; running;) {
            if (curl_multi_perform(m.get(), &running) != CURLM_OK) {
                rc = CURLE_RECV_ERROR;
                break;
            }
            if (r.stop.stop_requested()) {
                r.ended_by_us = true;
                rc = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
            if (running && curl_multi_poll(m.get(), nullptr, 0, 1000, nullptr) != CURLM_OK) {
                rc = CURLE_RECV_ERROR;
                break;
            }
        }
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(m.get(), &left))
            if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
    }
    curl_multi_remove_handle(m.get(), c);
    return rc;
}

std::string url_escape(std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out += static_cast<char>(ch);
        } else {
            out += '%';
            out += hex[ch >> 4];
            out += hex[ch & 15];
        }
    }
    return out;
}

KubeClient::KubeClient(KubeConfig cfg) : cfg_(std::move(cfg)) {
    global_init();
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
        if (t) token_ = trim(*t);
        else log::warn("kubernetes token: " + t.error().message + " (keeping the last one read)");
    }
    return token_.empty() ? cfg_.token : token_;
}

Result<KubeResponse> KubeClient::perform(Request& r) {
    CurlPtr h(curl_easy_init());
    if (!h) return Error{ENOMEM, "curl_easy_init failed"};
    CURL* c = h.get();
    r.h = c;
    r.buf.clear();
    r.resp = {};
    r.ended_by_us = r.too_big = false;
    const std::string url = cfg_.server + r.path;
    char errbuf[CURL_ERROR_SIZE] = {};

    SlistPtr headers;
    auto add_header = [&](const std::string& hdr) {
        curl_slist* n = curl_slist_append(headers.get(), hdr.c_str());
        if (n) (void)headers.release(), headers.reset(n);
    };
    add_header("Accept: application/json");
    if (std::string tok = bearer(false); !tok.empty()) add_header("Authorization: Bearer " + tok);
    if (!r.content_type.empty()) add_header("Content-Type: " + r.content_type);

    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "skiff-agent");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    // Compressed lists, but never compressed watches: a compressor may hold
    // events back until it has a block's worth.
    if (!r.on_line) curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(cfg_.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     static_cast<long>((r.on_line ? r.timeout : cfg_.request_timeout).count()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    if (std::string_view(r.method) != "GET") {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r.method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r.body.c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
    }
    if (cfg_.insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    // The blobs are copied by curl (CURL_BLOB_COPY).
    auto blob = [](const std::string& s) {
        return curl_blob{const_cast<char*>(s.data()), s.size(), CURL_BLOB_COPY};
    };
    if (!cfg_.ca_data.empty()) {
        curl_blob b = blob(cfg_.ca_data);
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
    } else if (!cfg_.ca_file.empty()) {
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg_.ca_file.c_str());
    }
    if (!cfg_.client_cert_data.empty()) {
        curl_blob b = blob(cfg_.client_cert_data);
        curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &b);
    } else if (!cfg_.client_cert_file.empty()) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, cfg_.client_cert_file.c_str());
    }
    if (!cfg_.client_key_data.empty()) {
        curl_blob b = blob(cfg_.client_key_data);
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &b);
    } else if (!cfg_.client_key_file.empty()) {
        curl_easy_setopt(c, CURLOPT_SSLKEY, cfg_.client_key_file.c_str());
    }

    CURLcode rc = r.on_line ? perform_stoppable(c, r) : curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.resp.status);
    const std::string what = std::string(r.method) + " " + url;
    if (r.too_big) return Error{EMSGSIZE, what + ": response too large"};
    bool ended_ok = rc == CURLE_OK ||
                    (r.ended_by_us && (rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK)) ||
                    (r.on_line && r.resp.status == 200 && rc == CURLE_OPERATION_TIMEDOUT);
    if (!ended_ok) return Error{errno_of(rc), what + ": " + (errbuf[0] ? errbuf : curl_easy_strerror(rc))};
    return std::move(r.resp);
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

Result<std::string> base64_decode(std::string_view in) {
    std::string s;
    for (char ch : in)
        if (!std::isspace(static_cast<unsigned char>(ch))) s += ch;
    if (s.size() % 4 != 0) return Error::invalid("base64: length is not a multiple of 4");
    std::string out(s.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
    if (n < 0) return Error::invalid("base64: invalid input");
    size_t pad = 0;
    if (!s.empty() && s.back() == '=') pad = s.size() >= 2 && s[s.size() - 2] == '=' ? 2 : 1;
    out.resize(static_cast<size_t>(n) - pad);
    return out;
}

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
