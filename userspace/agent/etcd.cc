#include "etcd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>

namespace skiff::agent {

using nlohmann::json;

static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::string& in) {
    std::string out;
    size_t i = 0;
    while (i + 2 < in.size()) {
        uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
        out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
        i += 3;
    }
    if (i + 1 == in.size()) {
        uint32_t v = uint8_t(in[i]) << 16;
        out += {kB64[v >> 18], kB64[(v >> 12) & 63], '=', '='};
    } else if (i + 2 == in.size()) {
        uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
        out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], '='};
    }
    return out;
}

Result<std::string> base64_decode(const std::string& in) {
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        if (c == '=') break;
        const char* p = std::strchr(kB64, c);
        if (!p || c == '\0') return Error::invalid("invalid base64");
        acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

std::string prefix_range_end(const std::string& prefix) {
    std::string end = prefix;
    for (int i = static_cast<int>(end.size()) - 1; i >= 0; --i) {
        if (static_cast<uint8_t>(end[i]) < 0xff) {
            end[i] = static_cast<char>(end[i] + 1);
            end.resize(static_cast<size_t>(i) + 1);
            return end;
        }
    }
    return std::string(1, '\0');  // whole keyspace
}

Result<Endpoint> parse_endpoint_url(const std::string& url) {
    std::string rest = url;
    if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
    else if (rest.find("://") != std::string::npos) return Error::invalid("etcd endpoint " + url + ": only http:// is supported");
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    auto colon = rest.rfind(':');
    Endpoint e;
    e.host = colon == std::string::npos ? rest : rest.substr(0, colon);
    if (colon != std::string::npos) {
        e.port = std::atoi(rest.c_str() + colon + 1);
        if (e.port <= 0 || e.port > 65535) return Error::invalid("etcd endpoint " + url + ": bad port");
    }
    if (e.host.empty()) return Error::invalid("etcd endpoint " + url + ": no host");
    return e;
}

namespace {

constexpr int kTimeoutMs = 2000;

Result<UniqueFd> connect_to(const Endpoint& ep) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res); rc != 0)
        return Error{EHOSTUNREACH, "resolve " + ep.host + ": " + gai_strerror(rc)};
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return Error::errno_("socket");
    std::string where = ep.host + ":" + std::to_string(ep.port);
    if (::connect(fd.get(), res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS)
        return Error::errno_("connect " + where);
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, kTimeoutMs) <= 0) return Error{ETIMEDOUT, "connect " + where + ": timed out"};
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) return Error::os(err, "connect " + where);
    ::fcntl(fd.get(), F_SETFL, 0);  // blocking from here, with timeouts
    timeval tv{kTimeoutMs / 1000, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

Status send_request(int fd, const Endpoint& ep, const std::string& path, const std::string& body) {
    std::string req = "POST /v3/" + path + " HTTP/1.0\r\nHost: " + ep.host + "\r\nContent-Type: application/json\r\n" +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    size_t off = 0;
    while (off < req.size()) {
        ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return Error::errno_("send to etcd");
        off += static_cast<size_t>(n);
    }
    return ok();
}

}  // namespace

Result<json> EtcdClient::call(const std::string& path, const json& body) {
    Error last{EHOSTUNREACH, "no etcd endpoints"};
    for (const auto& ep : endpoints_) {
        auto fd = connect_to(ep);
        if (!fd) {
            last = fd.error();
            continue;
        }
        if (auto s = send_request(fd->get(), ep, path, body.dump()); !s) {
            last = s.error();
            continue;
        }
        std::string resp;
        char buf[8192];
        ssize_t n;
        while ((n = ::recv(fd->get(), buf, sizeof(buf), 0)) > 0) resp.append(buf, static_cast<size_t>(n));
        if (n < 0) {
            last = Error::errno_("read from etcd " + ep.host);
            continue;
        }
        auto hdr_end = resp.find("\r\n\r\n");
        if (resp.compare(0, 5, "HTTP/") != 0 || hdr_end == std::string::npos) {
            last = Error{EPROTO, "etcd " + ep.host + ": not an HTTP response"};
            continue;
        }
        int status = std::atoi(resp.c_str() + resp.find(' ') + 1);
        json j = json::parse(resp.substr(hdr_end + 4), nullptr, false);
        if (status != 200) {
            std::string msg = j.is_object() ? j.value("error", j.value("message", std::string())) : "";
            return Error{EIO, "etcd " + path + ": HTTP " + std::to_string(status) + " " + msg};
        }
        if (j.is_discarded()) return Error{EPROTO, "etcd " + path + ": response is not JSON"};
        return j;
    }
    return last;
}

Result<std::vector<std::pair<std::string, std::string>>> EtcdClient::range_prefix(const std::string& prefix) {
    SKIFF_ASSIGN_OR_RETURN(json r, call("kv/range", {{"key", base64_encode(prefix)},
                                                      {"range_end", base64_encode(prefix_range_end(prefix))}}));
    std::vector<std::pair<std::string, std::string>> out;
    if (r.contains("kvs") && r["kvs"].is_array())
        for (const auto& kv : r["kvs"]) {
            auto k = base64_decode(kv.value("key", ""));
            auto v = base64_decode(kv.value("value", ""));
            if (k && v) out.emplace_back(*k, *v);
        }
    return out;
}

Status EtcdClient::put(const std::string& key, const std::string& value, const std::string& lease_id) {
    json body = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (!lease_id.empty()) body["lease"] = lease_id;
    SKIFF_ASSIGN_OR_RETURN(json r, call("kv/put", body));
    (void)r;
    return ok();
}

Result<bool> EtcdClient::create(const std::string& key, const std::string& value) {
    json body = {{"compare", json::array({{{"target", "CREATE"}, {"key", base64_encode(key)}, {"createRevision", "0"}}})},
                 {"success", json::array({{{"requestPut", {{"key", base64_encode(key)}, {"value", base64_encode(value)}}}}})}};
    SKIFF_ASSIGN_OR_RETURN(json r, call("kv/txn", body));
    return r.value("succeeded", false);
}

Result<std::string> EtcdClient::grant_lease(int ttl_seconds) {
    SKIFF_ASSIGN_OR_RETURN(json r, call("lease/grant", {{"TTL", std::to_string(ttl_seconds)}}));
    if (!r.contains("ID") || !r["ID"].is_string()) return Error{EPROTO, "etcd lease grant: no ID"};
    return r["ID"].get<std::string>();
}

Result<long> EtcdClient::keepalive(const std::string& lease_id) {
    SKIFF_ASSIGN_OR_RETURN(json r, call("lease/keepalive", {{"ID", lease_id}}));
    const json& res = r.contains("result") ? r["result"] : r;
    if (!res.contains("TTL")) return 0L;  // expired leases come back without a TTL
    const auto& t = res["TTL"];
    return t.is_string() ? std::atol(t.get<std::string>().c_str()) : t.get<long>();
}

EtcdWatch::EtcdWatch(std::vector<Endpoint> endpoints, std::string prefix)
    : endpoints_(std::move(endpoints)), prefix_(std::move(prefix)), thread_([this] { run(); }) {}

EtcdWatch::~EtcdWatch() {
    stop_ = true;
    {
        std::lock_guard g(mu_);
        if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    }
    thread_.join();
}

void EtcdWatch::run() {
    size_t next = 0;
    std::string body = json{{"create_request", {{"key", base64_encode(prefix_)},
                                                {"range_end", base64_encode(prefix_range_end(prefix_))}}}}.dump();
    while (!stop_) {
        const Endpoint& ep = endpoints_[next++ % endpoints_.size()];
        auto fd = connect_to(ep);
        if (fd && send_request(fd->get(), ep, "watch", body)) {
            {
                std::lock_guard g(mu_);
                fd_ = fd->get();
            }
            timeval tv{0, 500000};  // wake up regularly to notice stop_
            ::setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            changed_ = true;  // anything may have happened while disconnected
            char buf[8192];
            std::string tail;  // a marker may straddle two reads
            while (!stop_) {
                ssize_t n = ::recv(fd->get(), buf, sizeof(buf), 0);
                if (n == 0) break;
                if (n < 0) {
                    if (errno == EAGAIN || errno == EINTR) continue;
                    break;
                }
                std::string window = tail + std::string(buf, static_cast<size_t>(n));
                if (window.find("\"events\"") != std::string::npos) changed_ = true;
                tail = window.substr(window.size() > 16 ? window.size() - 16 : 0);
            }
            std::lock_guard g(mu_);
            fd_ = -1;
        }
        changed_ = true;
        for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

}  // namespace skiff::agent
