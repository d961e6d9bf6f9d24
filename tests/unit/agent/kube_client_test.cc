// The Kubernetes REST client (userspace/agent/kube_client.cc): streams,
// token files, kubeconfig and in-cluster configuration.
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/kube_client.h"
#include "k8s_fake_api.h"

namespace skiff::agent {
namespace {

using namespace k8s_test;

KubeConfig local(const FakeApi& api) {
    KubeConfig c;
    c.server = api.url();
    return c;
}

size_t watches(FakeApi& api) {
    std::lock_guard lk(api.mu);
    size_t n = 0;
    for (const auto& r : api.requests) n += r.rfind("WATCH", 0) == 0;
    return n;
}

TEST(KubeClientTest, StreamStopsAtOnceOnRequest) {
    FakeApi api;
    ASSERT_TRUE(api.up());
    KubeClient client(local(api));
    std::stop_source stop;
    std::thread stopper([&] {
        eventually([&] { return watches(api) == 1; });
        stop.request_stop();
    });
    auto t0 = std::chrono::steady_clock::now();
    auto r = client.stream(
        kNodes + "?watch=1&resourceVersion=100&timeoutSeconds=60", [](std::string_view) { return true; },
        stop.get_token(), 60s);
    stopper.join();
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(KubeClientTest, RereadsTheTokenFilePeriodically) {
    FakeApi api;
    ASSERT_TRUE(api.up());
    TempDirPath dir;
    std::string tok = dir.path + "/token";
    std::ofstream(tok) << "first";
    KubeConfig c = local(api);
    c.token_file = tok;
    c.token_reread = 0ms;
    KubeClient client(c);
    ASSERT_EQ(client.get(kNodes).value().status, 200);
    std::ofstream(tok) << "second";
    ASSERT_EQ(client.get(kNodes).value().status, 200);
    std::lock_guard lk(api.mu);
    EXPECT_EQ(api.auth_seen, (std::vector<std::string>{"Bearer first", "Bearer second"}));
}

// ---- configuration ----

std::string b64(const std::string& s) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < s.size(); i += 3) {
        uint32_t v = static_cast<uint8_t>(s[i]) << 16;
        if (i + 1 < s.size()) v |= static_cast<uint8_t>(s[i + 1]) << 8;
        if (i + 2 < s.size()) v |= static_cast<uint8_t>(s[i + 2]);
        out += t[v >> 18 & 63];
        out += t[v >> 12 & 63];
        out += i + 1 < s.size() ? t[v >> 6 & 63] : '=';
        out += i + 2 < s.size() ? t[v & 63] : '=';
    }
    return out;
}

const char* kCa = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

std::string kubeconfig() {
    return R"(apiVersion: v1
kind: Config
current-context: admin@prod
clusters:
- name: prod
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: )" +
           b64(kCa) + R"(
- name: lab
  cluster:
    server: https://lab.example:6443
    certificate-authority: certs/ca.crt
    insecure-skip-tls-verify: true
contexts:
- name: admin@prod
  context: {cluster: prod, user: admin}
- name: agent@lab
  context: {cluster: lab, user: agent}
- name: sso
  context: {cluster: prod, user: sso}
users:
- name: admin
  user:
    token: abc.def
- name: agent
  user:
    tokenFile: /var/run/token
    client-certificate-data: )" +
           b64("CERT") + R"(
    client-key-data: )" +
           b64("KEY") + R"(
    client-certificate: ignored.crt
- name: sso
  user:
    exec: {command: get-token}
)";
}

TEST(KubeConfigTest, CurrentContextTokenAndCaData) {
    auto c = parse_kubeconfig(kubeconfig(), "/etc/kube");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->server, "https://10.0.0.1:6443");
    EXPECT_EQ(c->ca_data, kCa);
    EXPECT_EQ(c->token, "abc.def");
    EXPECT_TRUE(c->token_file.empty());
    EXPECT_FALSE(c->insecure);
}

TEST(KubeConfigTest, NamedContextFilesAndClientCert) {
    auto c = parse_kubeconfig(kubeconfig(), "/etc/kube", "agent@lab");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->server, "https://lab.example:6443");
    EXPECT_EQ(c->ca_file, "/etc/kube/certs/ca.crt");
    EXPECT_TRUE(c->insecure);
    EXPECT_EQ(c->token_file, "/var/run/token");
    EXPECT_EQ(c->client_cert_data, "CERT");
    EXPECT_EQ(c->client_key_data, "KEY");
}

TEST(KubeConfigTest, ErrorsAreValues) {
    EXPECT_FALSE(parse_kubeconfig(kubeconfig(), "", "nope").ok());
    auto sso = parse_kubeconfig(kubeconfig(), "", "sso");
    ASSERT_FALSE(sso.ok());
    EXPECT_NE(sso.error().message.find("exec"), std::string::npos);
    EXPECT_FALSE(parse_kubeconfig("clusters: [unclosed", "").ok());  // yaml-cpp throws inside
    EXPECT_FALSE(parse_kubeconfig("- a\n- b\n", "").ok());
    EXPECT_FALSE(parse_kubeconfig("current-context: x\ncontexts: 5\n", "").ok());
    EXPECT_FALSE(load_kubeconfig("/nonexistent/kubeconfig").ok());
}

TEST(KubeClientTest, KubeconfigDrivesTheClient) {
    FakeApi api;
    ASSERT_TRUE(api.up());
    {
        std::lock_guard lk(api.mu);
        api.token = "abc.def";
    }
    TempDirPath dir;
    std::string text = kubeconfig();
    text.replace(text.find("https://10.0.0.1:6443"), 21, api.url());
    std::ofstream(dir.path + "/config") << text;
    auto c = load_kubeconfig(dir.path + "/config");
    ASSERT_TRUE(c.ok()) << c.error().message;
    KubeClient client(*c);
    auto r = client.get(kNodes);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200);
}

TEST(KubeConfigTest, InCluster) {
    TempDirPath dir;
    InClusterPaths p;
    p.token = dir.path + "/token";
    p.ca = dir.path + "/ca.crt";
    p.host = "10.96.0.1";
    p.port = "443";
    EXPECT_FALSE(in_cluster_config(p).ok());  // no token yet
    std::ofstream(p.token) << "t";
    std::ofstream(p.ca) << kCa;
    auto c = in_cluster_config(p);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->server, "https://10.96.0.1:443");
    EXPECT_EQ(c->ca_file, p.ca);
    EXPECT_EQ(c->token_file, p.token);
    p.host = "fd00::1";
    EXPECT_EQ(in_cluster_config(p).value().server, "https://[fd00::1]:443");
}

}  // namespace
}  // namespace skiff::agent
