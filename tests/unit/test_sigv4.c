/* test_sigv4.c -- AWS Signature Version 4 against AWS's own test suite and botocore.
 *
 * The vectors are AWS's "Signature Version 4 Test Suite" (aws-sig-v4-test-suite: each case's
 * .req, .creq, .sts and .authz files; region us-east-1, service "service", key AKIDEXAMPLE,
 * time 20150830T123600Z). Every case checks all three of the canonical request, the string to
 * sign and the Authorization header. The Bedrock cases (a model id with ':' and an
 * inference-profile ARN) have no AWS file: their expected values come from botocore 1.43's
 * SigV4Auth on the same requests, an independent implementation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planb/sigv4.h"

#define KEY_ID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

typedef struct vector {
    const char *name;
    const char *method, *path, *query;
    pb_sigv4_header headers[4];
    size_t n_headers;
    const char *body;
    const char *token;
    const char *creq, *sts, *authz;
} vector;

/* Generated from the suite's files. post-x-www-form-urlencoded: the suite's .creq signs
 * content-length but its .sts and .authz were made without it (the .sts is not the hash of
 * the .creq: a known slip of the suite), so content-length is left out here and the .creq
 * shown is the suite's minus that header; the .sts and .authz are the suite's, unchanged. */
static const vector vectors[] = {
    {
        .name = "get-vanilla",
        .method = "GET",
        .path = "/",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    {
        .name = "get-vanilla-query-order-key-case",
        .method = "GET",
        .path = "/",
        .query = "Param2=value2&Param1=value1",

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "Param1=value1&Param2=value2\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    },
    {
        .name = "get-vanilla-empty-query-key",
        .method = "GET",
        .path = "/",
        .query = "Param1=value1",

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "Param1=value1\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    },
    {
        .name = "get-vanilla-query-unreserved",
        .method = "GET",
        .path = "/",
        .query = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~"
                 "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~"
                "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    },
    {
        .name = "get-vanilla-utf8-query",
        .method = "GET",
        .path = "/",
        .query = "\xe1"
                 "\x88"
                 "\xb4"
                 "=bar",

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "%E1%88%B4=bar\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    },
    {
        .name = "get-unreserved",
        .method = "GET",
        .path = "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    },
    {
        .name = "get-utf8",
        .method = "GET",
        .path = "/\xe1"
                "\x88"
                "\xb4"
                "",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/%E1%88%B4\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    },
    {
        .name = "get-header-value-trim",
        .method = "GET",
        .path = "/",
        .query = NULL,
        .headers = {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
        .n_headers = 2,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "my-header1:value1\n"
                "my-header2:\"a b c\"\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;my-header1;my-header2;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
                 "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    },
    {
        .name = "get-header-key-duplicate",
        .method = "GET",
        .path = "/",
        .query = NULL,
        .headers = {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
        .n_headers = 3,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "my-header1:value2,value2,value1\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;my-header1;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;my-header1;x-amz-date, "
                 "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    },
    {
        .name = "post-vanilla",
        .method = "POST",
        .path = "/",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "POST\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    },
    {
        .name = "post-vanilla-empty-query-value",
        .method = "POST",
        .path = "/",
        .query = "Param1=value1",

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "POST\n"
                "/\n"
                "Param1=value1\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    },
    {
        .name = "post-x-www-form-urlencoded",
        .method = "POST",
        .path = "/",
        .query = NULL,
        .headers = {{"Content-Type", "application/x-www-form-urlencoded"}},
        .n_headers = 1,
        .body = "Param1=value1",
        .token = NULL,
        .creq = "POST\n"
                "/\n"
                "\n"
                "content-type:application/x-www-form-urlencoded\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "content-type;host;x-amz-date\n"
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=content-type;host;x-amz-date, "
                 "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    },
    {
        .name = "get-space",
        .method = "GET",
        .path = "/example space/",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/example%20space/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    },
    {
        .name = "get-slashes",
        .method = "GET",
        .path = "//example//",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/example/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    },
    {
        .name = "get-slash-dot-slash",
        .method = "GET",
        .path = "/./",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    {
        .name = "get-slash-pointless-dot",
        .method = "GET",
        .path = "/./example",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/example\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
    },
    {
        .name = "get-relative-relative",
        .method = "GET",
        .path = "/example1/example2/../..",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = NULL,
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    {
        .name = "post-sts-header-before",
        .method = "POST",
        .path = "/",
        .query = NULL,

        .n_headers = 0,
        .body = "",
        .token = "AQoDYXdzEPT//////////"
                 "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTf"
                 "lfKD8YUuwthAx7mSEI/qkPpKPi/"
                 "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8T"
                 "x6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
                 "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
        .creq = "POST\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "x-amz-security-token:AQoDYXdzEPT//////////"
                "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTfl"
                "fKD8YUuwthAx7mSEI/qkPpKPi/"
                "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx"
                "6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
                "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==\n"
                "\n"
                "host;x-amz-date;x-amz-security-token\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date;x-amz-security-token, "
                 "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    },
};

static void
sign_vector(const vector *v, pb_sigv4_signed *out)
{
    pb_sigv4_request req = {.method = v->method,
                            .host = "example.amazonaws.com",
                            .path = v->path,
                            .query = v->query,
                            .headers = v->headers,
                            .n_headers = v->n_headers,
                            .body = v->body,
                            .body_len = strlen(v->body),
                            .region = "us-east-1",
                            .service = "service",
                            .access_key_id = KEY_ID,
                            .secret_access_key = SECRET,
                            .session_token = v->token,
                            .amz_date = "20150830T123600Z"};
    pb_error err = {0};
    cr_assert_eq(pb_sigv4_sign(&req, out, &err), PB_OK, "%s: %s", v->name, err.msg);
}

Test(sigv4, aws_test_suite_vectors)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector *v = &vectors[i];
        pb_sigv4_signed s;
        sign_vector(v, &s);
        cr_expect_str_eq(s.canonical_request, v->creq, "%s canonical request", v->name);
        cr_expect_str_eq(s.string_to_sign, v->sts, "%s string to sign", v->name);
        cr_expect_str_eq(s.authorization, v->authz, "%s authorization", v->name);
        cr_expect_str_eq(s.amz_date, "20150830T123600Z");
        if (v->token)
            cr_expect_str_eq(s.security_token, v->token, "%s", v->name);
        else
            cr_expect_null(s.security_token, "%s", v->name);
        pb_sigv4_signed_free(&s);
    }
}

Test(sigv4, payload_hash_is_the_body_sha256_or_the_one_given)
{
    pb_sigv4_request req = {.method = "POST",
                            .host = "h",
                            .body = "Param1=value1",
                            .body_len = 13,
                            .region = "r",
                            .service = "s",
                            .access_key_id = "a",
                            .secret_access_key = "k",
                            .amz_date = "20150830T123600Z"};
    pb_sigv4_signed a, b;
    cr_assert_eq(pb_sigv4_sign(&req, &a, NULL), PB_OK);
    cr_expect_str_eq(a.content_sha256,
                     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    req.body = NULL;
    req.body_len = 0;
    req.body_sha256_hex = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";
    cr_assert_eq(pb_sigv4_sign(&req, &b, NULL), PB_OK);
    cr_expect_str_eq(a.authorization, b.authorization);
    cr_expect_null(strstr(a.canonical_request, "x-amz-content-sha256"));
    pb_sigv4_signed_free(&b);
    /* Asked for, the hash is a signed header too. */
    req.sign_content_sha256 = true;
    cr_assert_eq(pb_sigv4_sign(&req, &b, NULL), PB_OK);
    cr_expect_not_null(strstr(b.canonical_request, "\nx-amz-content-sha256:9095672b"));
    cr_expect_not_null(strstr(b.authorization, "SignedHeaders=host;x-amz-content-sha256;"));
    cr_expect_str_neq(a.authorization, b.authorization);
    pb_sigv4_signed_free(&a);
    pb_sigv4_signed_free(&b);
}

static const char bedrock_body[] =
    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi\"}]}]}";

static void
sign_bedrock(const char *model_id, const char *token, char **sent_path, pb_sigv4_signed *out)
{
    char *seg = pb_sigv4_uri_encode(model_id, strlen(model_id));
    *sent_path = malloc(strlen(seg) + 32);
    sprintf(*sent_path, "/model/%s/converse", seg);
    free(seg);
    pb_sigv4_header ct = {"Content-Type", "application/json"};
    pb_sigv4_request req = {.method = "POST",
                            .host = "bedrock-runtime.us-east-1.amazonaws.com",
                            .path = *sent_path,
                            .headers = &ct,
                            .n_headers = 1,
                            .body = bedrock_body,
                            .body_len = strlen(bedrock_body),
                            .region = "us-east-1",
                            .service = "bedrock",
                            .access_key_id = KEY_ID,
                            .secret_access_key = SECRET,
                            .session_token = token,
                            .amz_date = "20240620T120000Z"};
    pb_error err = {0};
    cr_assert_eq(pb_sigv4_sign(&req, out, &err), PB_OK, "%s", err.msg);
}

/* ':' is sent as %3A (encoded once) and signed as %253A (the sent path encoded again, as AWS
 * does for every service but S3); curl 7.88 would sign the %3A as sent and be refused. */
Test(sigv4, bedrock_model_id_with_colon)
{
    char *path;
    pb_sigv4_signed s;
    sign_bedrock("anthropic.claude-3-5-sonnet-20240620-v1:0", NULL, &path, &s);
    cr_expect_str_eq(path, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    cr_expect_str_eq(s.canonical_request,
                     "POST\n"
                     "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse\n"
                     "\n"
                     "content-type:application/json\n"
                     "host:bedrock-runtime.us-east-1.amazonaws.com\n"
                     "x-amz-date:20240620T120000Z\n"
                     "\n"
                     "content-type;host;x-amz-date\n"
                     "c3335e07d6e89650bf94cb98664be69f8774dbc3198df221f113db0a59ea14f0");
    cr_expect_str_eq(s.authorization,
                     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240620/us-east-1/bedrock/"
                     "aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                     "Signature=b5a362b606c44d328c9949843a8639dde3d96fff52aa556b09770555925f763d");
    free(path);
    pb_sigv4_signed_free(&s);
}

/* An ARN holds ':' and '/': the '/' is part of the one segment, sent %2F, signed %252F. */
Test(sigv4, bedrock_inference_profile_arn_with_session_token)
{
    char *path;
    pb_sigv4_signed s;
    sign_bedrock("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                 "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
                 "FQoGZXIvYXdzEXAMPLETOKEN", &path, &s);
    cr_expect_str_eq(path, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-"
                           "profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    cr_expect_not_null(strstr(s.canonical_request,
                              "\n/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%"
                              "253Ainference-profile%252Fus.anthropic.claude-3-5-sonnet-20240620-"
                              "v1%253A0/converse\n"));
    cr_expect_not_null(
        strstr(s.canonical_request, "\nx-amz-security-token:FQoGZXIvYXdzEXAMPLETOKEN\n"));
    cr_expect_str_eq(s.authorization,
                     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240620/us-east-1/bedrock/"
                     "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-"
                     "token, Signature=5b6e08f3d7f20b4123a1a32256b96f603666bf060560610477614f383"
                     "39e1c04");
    cr_expect_str_eq(s.security_token, "FQoGZXIvYXdzEXAMPLETOKEN");
    free(path);
    pb_sigv4_signed_free(&s);
}

Test(sigv4, a_changed_body_or_path_changes_the_signature)
{
    char *p1, *p2;
    pb_sigv4_signed a, b;
    sign_bedrock("anthropic.claude-3-5-sonnet-20240620-v1:0", NULL, &p1, &a);
    sign_bedrock("anthropic.claude-3-5-sonnet-20240620-v2:0", NULL, &p2, &b);
    cr_expect_str_neq(a.authorization, b.authorization);
    free(p1);
    free(p2);
    pb_sigv4_signed_free(&a);
    pb_sigv4_signed_free(&b);
}

Test(sigv4, uri_encode_keeps_only_unreserved)
{
    char *e = pb_sigv4_uri_encode("a-Z_0.~ :/%+\xe1\x88\xb4", 15);
    cr_expect_str_eq(e, "a-Z_0.~%20%3A%2F%25%2B%E1%88%B4");
    free(e);
}

Test(sigv4, refuses_bad_input)
{
    pb_sigv4_header h[PB_SIGV4_MAX_HEADERS + 1];
    for (size_t i = 0; i < PB_SIGV4_MAX_HEADERS + 1; i++)
        h[i] = (pb_sigv4_header){"x-a", "b"};
    pb_sigv4_request ok = {.method = "GET",
                           .host = "h",
                           .region = "r",
                           .service = "s",
                           .access_key_id = "a",
                           .secret_access_key = "k",
                           .amz_date = "20150830T123600Z"};
    pb_sigv4_signed s;
    pb_error err = {0};
    cr_assert_eq(pb_sigv4_sign(&ok, &s, &err), PB_OK);
    pb_sigv4_signed_free(&s);
    const char *dates[] = {NULL, "", "20150830T123600", "2015083OT123600Z", "20150830 123600Z"};
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        pb_sigv4_request r = ok;
        r.amz_date = dates[i];
        cr_expect_eq(pb_sigv4_sign(&r, &s, &err), PB_ERR, "date %zu", i);
        cr_expect_eq(strncmp(err.msg, "BAD_SIGV4 ", 10), 0, "%s", err.msg);
    }
    pb_sigv4_request r = ok;
    r.secret_access_key = NULL;
    cr_expect_eq(pb_sigv4_sign(&r, &s, &err), PB_ERR);
    r = ok;
    r.headers = h;
    r.n_headers = PB_SIGV4_MAX_HEADERS + 1;
    cr_expect_eq(pb_sigv4_sign(&r, &s, &err), PB_ERR);
    r.n_headers = PB_SIGV4_MAX_HEADERS;
    cr_expect_eq(pb_sigv4_sign(&r, &s, &err), PB_OK, "%s", err.msg);
    pb_sigv4_signed_free(&s);
    pb_sigv4_header inj[] = {{"x-a", "b\r\nx-evil: 1"}}, dup[] = {{"Host", "other"}};
    r = ok;
    r.headers = inj;
    r.n_headers = 1;
    cr_expect_eq(pb_sigv4_sign(&r, &s, &err), PB_ERR);
    r.headers = dup;
    cr_expect_eq(pb_sigv4_sign(&r, &s, &err), PB_ERR);
    r = ok;
    r.path = "/a?b";
    cr_expect_eq(pb_sigv4_sign(&r, &s, &err), PB_ERR);
    r = ok;
    r.host = "h\nx";
    cr_expect_eq(pb_sigv4_sign(&r, &s, &err), PB_ERR);
    pb_sigv4_signed_free(NULL);
}

/* The request of a vector as a server receives it: its headers, host, date, token and the
 * suite's Authorization. */
static size_t
received_of(const vector *v, pb_sigv4_header *h, const char *authz)
{
    size_t n = 0;
    h[n++] = (pb_sigv4_header){"Host", "example.amazonaws.com"};
    h[n++] = (pb_sigv4_header){"X-Amz-Date", "20150830T123600Z"};
    for (size_t i = 0; i < v->n_headers; i++)
        h[n++] = v->headers[i];
    if (v->token)
        h[n++] = (pb_sigv4_header){"X-Amz-Security-Token", v->token};
    h[n++] = (pb_sigv4_header){"Authorization", authz};
    return n;
}

static int
verify_vector(const vector *v, const char *path, const char *body, const char *authz, pb_error *err)
{
    pb_sigv4_header h[12];
    pb_sigv4_received r = {.method = v->method,
                           .path = path,
                           .query = v->query,
                           .headers = h,
                           .n_headers = received_of(v, h, authz),
                           .body = body,
                           .body_len = strlen(body)};
    return pb_sigv4_verify(&r, "us-east-1", "service", KEY_ID, SECRET, NULL, err);
}

Test(sigv4, verify_accepts_every_suite_request_and_refuses_it_changed)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector *v = &vectors[i];
        pb_error err = {0};
        cr_expect_eq(verify_vector(v, v->path, v->body, v->authz, &err), PB_OK, "%s: %s", v->name,
                     err.msg);
        cr_expect_eq(verify_vector(v, "/other", v->body, v->authz, &err), PB_ERR, "%s path",
                     v->name);
        cr_expect_str_eq(err.msg, "BAD_SIGV4 signature does not match");
        cr_expect_eq(verify_vector(v, v->path, "changed", v->authz, &err), PB_ERR, "%s body",
                     v->name);
        /* One hex digit of the signature changed. */
        char bad[512];
        snprintf(bad, sizeof(bad), "%s", v->authz);
        bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
        cr_expect_eq(verify_vector(v, v->path, v->body, bad, &err), PB_ERR, "%s sig", v->name);
    }
}

Test(sigv4, verify_round_trips_a_bedrock_request_and_refuses_tampering)
{
    char *path;
    pb_sigv4_signed s;
    sign_bedrock("anthropic.claude-3-5-sonnet-20240620-v1:0", "TOKEN", &path, &s);
    pb_sigv4_header h[] = {
        {"host", "bedrock-runtime.us-east-1.amazonaws.com"},
        {"content-type", "application/json"},
        {"x-amz-date", s.amz_date},
        {"x-amz-security-token", s.security_token},
        {"authorization", s.authorization},
        {"user-agent", "planb"}, /* unsigned: may change */
    };
    pb_sigv4_received r = {.method = "POST",
                           .path = path,
                           .headers = h,
                           .n_headers = 6,
                           .body = bedrock_body,
                           .body_len = strlen(bedrock_body)};
    pb_error err = {0};
    const char *date = NULL;
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", KEY_ID, SECRET, &date, &err), PB_OK,
                 "%s", err.msg);
    cr_expect_str_eq(date, "20240620T120000Z");
    h[5].value = "curl";
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", KEY_ID, SECRET, NULL, &err), PB_OK);
    struct {
        const char *what;
        int field;
        const char *value;
        const char *why;
    } bad[] = {
        {"signed header", 1, "text/plain", "does not match"},
        {"token", 3, "OTHER", "does not match"},
        {"date", 2, "20240621T120000Z", "credential's date"},
        {"time", 2, "20240620T120001Z", "does not match"},
        {"host", 0, "bedrock-runtime.eu-west-1.amazonaws.com", "does not match"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *keep = h[bad[i].field].value;
        h[bad[i].field].value = bad[i].value;
        cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", KEY_ID, SECRET, NULL, &err),
                     PB_ERR, "%s", bad[i].what);
        cr_expect_not_null(strstr(err.msg, bad[i].why), "%s: %s", bad[i].what, err.msg);
        h[bad[i].field].value = keep;
    }
    /* The path as curl 7.88 would have signed it: decoded ':' */
    r.path = "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse";
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", KEY_ID, SECRET, NULL, &err), PB_ERR);
    r.path = path;
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", "AKIDOTHER", SECRET, NULL, &err),
                 PB_ERR);
    cr_expect_not_null(strstr(err.msg, "access key id"));
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", KEY_ID, "other", NULL, &err), PB_ERR);
    cr_expect_eq(pb_sigv4_verify(&r, "us-west-2", "bedrock", KEY_ID, SECRET, NULL, &err), PB_ERR);
    cr_expect_not_null(strstr(err.msg, "scope"));
    /* A signed header that was not sent. */
    r.n_headers = 5;
    h[1].name = "x-content-type";
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", KEY_ID, SECRET, NULL, &err), PB_ERR);
    cr_expect_not_null(strstr(err.msg, "not sent"), "%s", err.msg);
    free(path);
    pb_sigv4_signed_free(&s);
}

Test(sigv4, verify_checks_a_sent_payload_hash)
{
    pb_sigv4_request req = {.method = "POST",
                            .host = "h",
                            .path = "/model/m/converse",
                            .body = "{}",
                            .body_len = 2,
                            .sign_content_sha256 = true,
                            .region = "us-east-1",
                            .service = "bedrock",
                            .access_key_id = KEY_ID,
                            .secret_access_key = SECRET,
                            .amz_date = "20240620T120000Z"};
    pb_sigv4_signed s;
    cr_assert_eq(pb_sigv4_sign(&req, &s, NULL), PB_OK);
    pb_sigv4_header h[] = {{"Host", "h"},
                           {"X-Amz-Date", s.amz_date},
                           {"X-Amz-Content-Sha256", s.content_sha256},
                           {"Authorization", s.authorization}};
    pb_sigv4_received r = {.method = "POST",
                           .path = "/model/m/converse",
                           .headers = h,
                           .n_headers = 4,
                           .body = "{}",
                           .body_len = 2};
    pb_error err = {0};
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", KEY_ID, SECRET, NULL, &err), PB_OK,
                 "%s", err.msg);
    r.body = "[]";
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "bedrock", KEY_ID, SECRET, NULL, &err), PB_ERR);
    cr_expect_not_null(strstr(err.msg, "x-amz-content-sha256"), "%s", err.msg);
    pb_sigv4_signed_free(&s);
}

Test(sigv4, verify_refuses_malformed_authorization)
{
    const char *auths[] = {
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "Bearer abc",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, SignedHeaders=host;"
        "x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request/x, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=5fa0",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956"
        "d9b8aae1d763fbf31, Extra=1",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request,"
        "SignedHeaders=host;x-amz-date,"
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    };
    for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
        pb_error err = {0};
        cr_expect_eq(verify_vector(&vectors[0], "/", "", auths[i], &err), PB_ERR, "%zu", i);
        cr_expect_eq(strncmp(err.msg, "BAD_SIGV4 ", 10), 0);
    }
    /* No Authorization at all, and two of them. */
    pb_sigv4_header h[] = {{"Host", "example.amazonaws.com"},
                           {"X-Amz-Date", "20150830T123600Z"},
                           {"Authorization", vectors[0].authz},
                           {"authorization", vectors[0].authz}};
    pb_sigv4_received r = {.method = "GET", .path = "/", .headers = h, .n_headers = 2};
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "service", KEY_ID, SECRET, NULL, NULL), PB_ERR);
    r.n_headers = 3;
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "service", KEY_ID, SECRET, NULL, NULL), PB_OK);
    r.n_headers = 4;
    cr_expect_eq(pb_sigv4_verify(&r, "us-east-1", "service", KEY_ID, SECRET, NULL, NULL), PB_ERR);
}

Test(sigv4, amz_date_formats_utc)
{
    char d[17];
    pb_sigv4_amz_date(1440938160000LL, d);
    cr_expect_str_eq(d, "20150830T123600Z");
    pb_sigv4_amz_date(0, d);
    cr_expect_str_eq(d, "19700101T000000Z");
}
