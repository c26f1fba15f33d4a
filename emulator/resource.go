package emulator

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ValidateAccessToken checks an access token the way a resource server (an API the
// token's audience names) does: issued by this tenant (signature), for audience, not
// expired (on the wall clock, as token expiry is). Tests use it as "the application's API
// call": it fails exactly when the API would answer 401.
func (s *Server) ValidateAccessToken(token, audience string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("malformed token")
	}
	if !hmac.Equal([]byte(parts[2]), []byte(s.sign(parts[0]+"."+parts[1]))) {
		return errors.New("invalid signature")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errors.New("malformed payload")
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return errors.New("malformed claims")
	}
	s.mu.Lock()
	revoked := c.Seq <= s.expiredUpTo
	s.mu.Unlock()
	switch {
	case revoked || time.Now().UnixMilli() >= c.ExpiresMS:
		return errors.New("token expired")
	case c.Audience != audience:
		return fmt.Errorf("token is for audience %q, not %q", c.Audience, audience)
	}
	return nil
}
