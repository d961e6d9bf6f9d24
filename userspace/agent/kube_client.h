// A small Kubernetes REST client on libcurl (through http_client.h): GET,
// PATCH and streaming GET (watches) against one API server, with a bearer
// token re-read from its file as it rotates, or a client certificate.
// Thread-safe: every request uses its own curl handle.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>

#include "common/result.h"
#include "http_client.h"  // base64_decode (kubeconfig *-data), url_escape

namespace skiff::agent {

struct KubeConfig {
    std::string server;  // https://host:port (http:// for tests)
    // Trust: a PEM file or PEM bytes; neither uses the system store.
    std::string ca_file, ca_data;
    bool insecure = false;  // no server certificate check (tests only)
    // Bearer token: as given, or read from token_file (bound tokens rotate:
    // re-read every token_reread and whenever the server answers 401).
    std::string token, token_file;
    std::chrono::milliseconds token_reread = std::chrono::minutes(1);
    // Client certificate and key: PEM files or PEM bytes.
    std::string client_cert_file, client_key_file, client_cert_data, client_key_data;
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
    std::chrono::milliseconds request_timeout = std::chrono::seconds(60);  // GET, PATCH
};

// Where a pod finds its service account; injectable for tests.
struct InClusterPaths {
    std::string token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    std::string ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
    std::string host, port;  // empty: $KUBERNETES_SERVICE_HOST / $KUBERNETES_SERVICE_PORT
};
Result<KubeConfig> in_cluster_config(const InClusterPaths& paths = {});

// A kubeconfig: the cluster and user of `context` (empty: current-context).
// Relative file names are relative to base_dir (the kubeconfig's directory).
Result<KubeConfig> parse_kubeconfig(const std::string& yaml, const std::string& base_dir,
                                    const std::string& context = "");
Result<KubeConfig> load_kubeconfig(const std::string& path, const std::string& context = "");

struct KubeResponse {
    long status = 0;
    std::string body;
};

class KubeClient {
public:
    explicit KubeClient(KubeConfig cfg);

    const KubeConfig& config() const { return cfg_; }
    // path: "/api/v1/nodes?limit=500" (appended to the server URL).
    Result<KubeResponse> get(const std::string& path);
    Result<KubeResponse> patch(const std::string& path, const std::string& body, const std::string& content_type);

    // A GET whose 200 body is newline-delimited JSON (a watch): on_line gets
    // each line as it arrives and returns false to end the stream; a stop
    // request on `stop` ends it at once (curl_multi_wakeup). Any other
    // status returns with its whole body. Ending on purpose (by on_line,
    // stop, the timeout or the server closing) is not an error.
    using LineFn = std::function<bool(std::string_view)>;
    Result<KubeResponse> stream(const std::string& path, const LineFn& on_line, std::stop_token stop,
                                std::chrono::milliseconds timeout);

    struct Request;  // internal: one request, retried once on a rotated token

private:
    Result<KubeResponse> perform(Request& r);
    Result<KubeResponse> with_auth_retry(Request& r);
    std::string bearer(bool force_reread);

    KubeConfig cfg_;
    std::mutex token_mu_;
    std::string token_;  // the token file's content as last read
    std::chrono::steady_clock::time_point token_read_{};
    bool token_ever_read_ = false;
};

}  // namespace skiff::agent
