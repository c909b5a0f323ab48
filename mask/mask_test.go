package mask

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const pem = "-----BEGIN KEY-----\nMIIEpAIBAAKCAQEA\r\n  q7Zx\nab\n-----END KEY-----"

// stringTests are shared by the String and Writer tests: whatever String
// does, the Writer must do at every split of the input.
var stringTests = []struct {
	name    string
	secrets []string
	in      string
	want    string
}{
	{"no secrets", nil, "plain text", "plain text"},
	{"empty secret ignored", []string{""}, "plain text", "plain text"},
	{"empty input", []string{"hunter2"}, "", ""},
	{"whole input", []string{"hunter2"}, "hunter2", "***"},
	{"inside text", []string{"hunter2"}, "pw=hunter2;", "pw=***;"},
	{"repeated", []string{"hunter2"}, "hunter2 and hunter2", "*** and ***"},
	{"adjacent same", []string{"hunter2"}, "hunter2hunter2", "******"},
	{"adjacent different", []string{"abcd", "wxyz"}, "-abcdwxyz-", "-******-"},
	{"overlapping", []string{"abcd", "cdef"}, "xabcdefx", "x***x"},
	{"overlapping reversed", []string{"cdef", "abcd"}, "xabcdefx", "x***x"},
	{"overlap chain", []string{"aa"}, "baaaab", "b***b"},
	{"nested shorter first", []string{"pass", "password"}, "my password!", "my ***!"},
	{"nested in the middle", []string{"xsecretx", "secret"}, "secret xsecretx", "*** ***"},
	{"prefix only", []string{"hunter2"}, "hunter hunte", "hunter hunte"},
	{"duplicate secrets", []string{"hunter2", "hunter2"}, "hunter2", "***"},
	{"one byte", []string{"x"}, "xyx", "***y***"},
	{"unicode", []string{"пароль"}, "мой пароль!", "мой ***!"},
	{"unicode neighbours", []string{"ключ"}, "ключключ ключи", "****** ***и"},
	{"emoji", []string{"🔑k"}, "a🔑k🔑", "a***🔑"},
	{"multi-line whole", []string{pem}, "key: " + pem + "\n", "key: ***\n"},
	{"multi-line by line", []string{pem}, "> MIIEpAIBAAKCAQEA\r\n> q7Zx\n> ab\n",
		"> ***\r\n> ***\n> ab\n"},
	{"multi-line armour", []string{pem}, "-----END KEY-----", "***"},
	{"multi-line short line", []string{"abc\nxyz1"}, "abc xyz1", "abc ***"},
}

func TestString(t *testing.T) {
	for _, tt := range stringTests {
		got := New(tt.secrets...).String(tt.in)
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("%s: New(%q).String(%q) mismatch (-got +want):\n%s",
				tt.name, tt.secrets, tt.in, diff)
		}
	}
}

func TestContains(t *testing.T) {
	tests := []struct {
		secrets []string
		in      string
		want    bool
	}{
		{nil, "anything", false},
		{[]string{""}, "anything", false},
		{[]string{"hunter2"}, "echo hunter2", true},
		{[]string{"hunter2"}, "echo hunter", false},
		{[]string{"other", "hunter2"}, "hunter2", true},
		{[]string{pem}, "echo q7Zx", true},
		{[]string{pem}, "echo ab", false},
	}
	for _, tt := range tests {
		if got := New(tt.secrets...).Contains(tt.in); got != tt.want {
			t.Errorf("New(%q).Contains(%q) = %v, want %v", tt.secrets, tt.in, got, tt.want)
		}
	}
}

func TestMaskerIgnoresCallerSlice(t *testing.T) {
	secrets := []string{"hunter2"}
	m := New(secrets...)
	secrets[0] = "other"

	if got := m.String("hunter2 other"); got != "*** other" {
		t.Errorf("String after changing New's argument = %q, want %q", got, "*** other")
	}
}
