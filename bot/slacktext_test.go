package bot

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeText(t *testing.T) {
	tests := []struct {
		in   string
		want string // unless the text is undecodable
		err  bool
	}{
		{"", "", false},
		{"terraform plan", "terraform plan", false},
		{"assign <@U0ABC> fix &lt;login&gt; &amp; docs", "assign @U0ABC fix <login> & docs", false},
		{"terraform taint &quot;x&quot;", "terraform taint &quot;x&quot;", false},
		{"echo &#39;a&#39; &nbsp; &", "echo &#39;a&#39; &nbsp; &", false},
		{"echo &amp;lt; &amp;amp; &amp;gt;", "echo &lt; &amp; &gt;", false},
		{"a&lt;&lt;b&gt;&gt;c", "a<<b>>c", false},
		{"a &amp&lt; b", "a &amp< b", false},

		// links
		{"curl <http://x.com|x.com>", "curl x.com", false},
		{"curl <https://x.com/a?b=1&amp;c=2>", "curl https://x.com/a?b=1&c=2", false},
		{"<https://x.com/?q=a&amp;b|x.com/?q=a&amp;b>", "x.com/?q=a&b", false},
		{"<https://x.com|a &lt;b&gt;>", "a <b>", false},
		{"<https://x.com|a|b>", "a|b", false},
		{"mail <mailto:a@b.c|a@b.c>", "mail a@b.c", false},
		{"<mailto:a@b.c>", "mailto:a@b.c", false},

		// users, channels, groups, broadcasts, dates
		{"ping <@U123|bob>", "ping @bob", false},
		{"ping <@W123>", "ping @W123", false},
		{"in <#C123|general>", "in #general", false},
		{"in <#C123|>", "in #C123", false},
		{"in <#C123>", "in #C123", false},
		{"<!here> <!channel> <!everyone>", "@here @channel @everyone", false},
		{"<!here|here> <!channel|@channel>", "@here @channel", false},
		{"<!subteam^S123|@ops>", "@ops", false},
		{"<!subteam^S123>", "@S123", false},
		{"at <!date^1392734382^{date}|Feb 18, 2014>", "at Feb 18, 2014", false},
		{"ask <@U012ABCDEF> to bake a cake for <@U345GHIJKL> in <#C012ABCDE>",
			"ask @U012ABCDEF to bake a cake for @U345GHIJKL in #C012ABCDE", false},
		{"<@U1><#C2|x><https://y>", "@U1#xhttps://y", false},
		{"multi\nline <@U1|a>\n&amp;", "multi\nline @a\n&", false},

		// undecodable
		{"a < b", "", true},
		{"a > b", "", true},
		{"<@U123", "", true},
		{"<a <b>", "", true},
		{"<a>>", "", true},
		{"x <> y", "", true},
		{"<!date^1392734382^{date}>", "", true},
		{"<!unknown>", "", true},
	}
	for _, tt := range tests {
		got, err := DecodeText(tt.in)
		if tt.err {
			if !errors.Is(err, ErrUndecodable) {
				t.Errorf("DecodeText(%q) = %q, %v; want an error wrapping ErrUndecodable",
					tt.in, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("DecodeText(%q) error: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("DecodeText(%q) mismatch (-got +want):\n%s", tt.in, diff)
		}
	}
}

func TestDecodeTextErrorSaysWhat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a < b", "a '<' without a closing '>'"},
		{"a > b", "a '>' without an opening '<'"},
		{"<a <b>", "a '<' without a closing '>'"},
		{"x <> y", "an empty '<>'"},
		{"<!date^1^{date}>", "a special mention ('<!…>') without a label to show"},
	}
	for _, tt := range tests {
		_, err := DecodeText(tt.in)
		var derr *DecodeError
		if !errors.As(err, &derr) || derr.Problem != tt.want {
			t.Errorf("DecodeText(%q) error = %v, want a *DecodeError with Problem %q", tt.in, err, tt.want)
		}
	}
}

func TestEscapeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{"a < b > c & d", "a &lt; b &gt; c &amp; d"},
		{"&lt; already", "&amp;lt; already"},
		{`"quotes" 'and' <@U1> ünï`, `"quotes" 'and' &lt;@U1&gt; ünï`},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(EscapeText(tt.in), tt.want); diff != "" {
			t.Errorf("EscapeText(%q) mismatch (-got +want):\n%s", tt.in, diff)
		}
	}
}

// TestDecodeTextRoundTrip checks that decoding undoes escaping exactly, for
// random text heavy in the characters entities are made of.
func TestDecodeTextRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	alphabet := []rune("&<>;amplgtquo#|@!^ \n\tx€日")
	for range 2000 {
		var b strings.Builder
		for range r.IntN(24) {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()

		got, err := DecodeText(EscapeText(s))
		if err != nil || got != s {
			t.Fatalf("DecodeText(EscapeText(%q)) = %q, %v; want the input back", s, got, err)
		}
	}
}
