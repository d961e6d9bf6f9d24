#include "http_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <cctype>
#include <memory>
#include <mutex>

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
struct MultiFree {
    void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
using MultiPtr = std::unique_ptr<CURLM, MultiFree>;

constexpr size_t kMaxBody = 256u << 20;  // a LIST page or an error body

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

int errno_of(CURLcode c) {
    switch (c) {
        case CURLE_COULDNT_CONNECT: return ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST: return EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT: return ETIMEDOUT;
        default: return EIO;
    }
}

// One transfer's state, seen by the write callback.
struct Transfer {
    const HttpClientRequest* req = nullptr;
    CURL* h = nullptr;
    HttpClientResponse resp;
    bool ended_by_us = false, too_big = false, stalled = false;
    // For the stall timeout: the byte counts last seen, and when they moved.
    curl_off_t down = 0, up = 0;
    std::chrono::steady_clock::time_point moved = std::chrono::steady_clock::now();
};

// curl calls this about once a second, and whenever bytes move.
int on_progress(void* ud, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
    auto* t = static_cast<Transfer*>(ud);
    auto now = std::chrono::steady_clock::now();
    if (dlnow != t->down || ulnow != t->up) {
        t->down = dlnow, t->up = ulnow, t->moved = now;
        return 0;
    }
    if (now - t->moved < t->req->stall_timeout) return 0;
    t->stalled = true;
    return 1;  // abort
}

size_t on_write(char* p, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    const size_t len = size * n;
    long code = 0;
    curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &code);
    if (!t->req->on_data || code != 200) {
        if (t->resp.body.size() + len > kMaxBody) return t->too_big = true, 0;
        t->resp.body.append(p, len);
        return len;
    }
    if (t->req->stop.stop_requested() || !t->req->on_data(std::string_view(p, len))) return t->ended_by_us = true, 0;
    return len;
}

// Runs a transfer on a multi handle so that a stop request (from another
// thread) wakes it at once rather than at curl's next progress tick.
CURLcode perform_stoppable(CURL* c, Transfer& t) {
    MultiPtr m(curl_multi_init());
    if (!m || curl_multi_add_handle(m.get(), c) != CURLM_OK) return CURLE_OUT_OF_MEMORY;
    CURLcode rc = CURLE_OK;
    {
        std::stop_callback wake(t.req->stop, [mp = m.get()] { curl_multi_wakeup(mp); });
        for (int running = 1; running;) {
            if (curl_multi_perform(m.get(), &running) != CURLM_OK) {
                rc = CURLE_RECV_ERROR;
                break;
            }
            if (t.req->stop.stop_requested()) {
                t.ended_by_us = true;
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

void set_tls(CURL* c, const HttpTls& tls) {
    if (tls.insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    // The blobs are copied by curl (CURL_BLOB_COPY).
    auto blob = [](const std::string& s) { return curl_blob{const_cast<char*>(s.data()), s.size(), CURL_BLOB_COPY}; };
    if (!tls.ca_data.empty()) {
        curl_blob b = blob(tls.ca_data);
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
    } else if (!tls.ca_file.empty()) {
        curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca_file.c_str());
    }
    if (!tls.cert_data.empty()) {
        curl_blob b = blob(tls.cert_data);
        curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &b);
    } else if (!tls.cert_file.empty()) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, tls.cert_file.c_str());
    }
    if (!tls.key_data.empty()) {
        curl_blob b = blob(tls.key_data);
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &b);
    } else if (!tls.key_file.empty()) {
        curl_easy_setopt(c, CURLOPT_SSLKEY, tls.key_file.c_str());
    }
}

}  // namespace

Result<HttpClientResponse> http_request(const HttpClientRequest& req) {
    global_init();
    CurlPtr h(curl_easy_init());
    if (!h) return Error{ENOMEM, "curl_easy_init failed"};
    CURL* c = h.get();
    Transfer t;
    t.req = &req;
    t.h = c;
    char errbuf[CURL_ERROR_SIZE] = {};

    SlistPtr headers;
    // No "Expect: 100-continue" round trip before larger bodies.
    headers.reset(curl_slist_append(nullptr, "Expect:"));
    for (const std::string& hdr : req.headers)
        if (curl_slist* n = curl_slist_append(headers.get(), hdr.c_str())) (void)headers.release(), headers.reset(n);

    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "skiff-agent");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    if (req.compressed) curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (req.direct) curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
    if (req.stall_timeout.count() > 0) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    if (req.method != "GET") {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body.size()));
    }
    set_tls(c, req.tls);

    if (req.stop.stop_requested()) return HttpClientResponse{};
    const bool streaming = static_cast<bool>(req.on_data);
    CURLcode rc = streaming ? perform_stoppable(c, t) : curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t.resp.status);
    const std::string what = req.method + " " + req.url;
    if (t.too_big) return Error{EMSGSIZE, what + ": response too large"};
    if (t.stalled)
        return Error{ETIMEDOUT, what + ": nothing received for " + std::to_string(req.stall_timeout.count()) + " ms"};
    bool ended_ok = rc == CURLE_OK || (t.ended_by_us && (rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK)) ||
                    (streaming && t.resp.status == 200 && rc == CURLE_OPERATION_TIMEDOUT);
    if (!ended_ok) return Error{errno_of(rc), what + ": " + (errbuf[0] ? errbuf : curl_easy_strerror(rc))};
    return std::move(t.resp);
}

std::string base64_encode(std::string_view in) {
    std::string out((in.size() + 2) / 3 * 4 + 1, '\0');  // EVP_EncodeBlock adds a NUL
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

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

std::string url_escape(std::string_view s) {
    if (s.empty()) return {};  // a length of 0 would make curl use strlen()
    global_init();
    // Everything but ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986).
    std::unique_ptr<char, decltype(&curl_free)> e(curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size())),
                                                  curl_free);
    return e ? std::string(e.get()) : std::string();
}

}  // namespace skiff::agent
