package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// On the real engine: a base image (any registry's, pulled as it is) whose
// ONBUILD trigger holds line breaks. The engine reads a trigger as a
// Dockerfile of its own, whose first line may be a parser directive; the
// check read it after a FROM line, where the directive is a comment. With
// the escape directive, the engine joined the trigger's lines into an ADD of
// a URL (a JSON array) that the check read as an ADD of a local file and an
// ENV.
func TestAttackUntrustedBaseTriggerWithLines(t *testing.T) {
	rt := newRuntime(t)
	url, hits := fetchCounter(t)
	jsonURL := strings.ReplaceAll(strings.Replace(url, ":", "\\u003a", 1), "/", "\\/")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	tag := loadImageWithTriggers(ctx, t, rt, "# escape=`\nADD [\""+jsonURL+"# a`\nENV \", \"/fetched\"]")
	child := writeContext(t, map[string]string{"Dockerfile": "FROM " + tag + "\n"})
	var out strings.Builder
	img, err := rt.Build(ctx, BuildRequest{ContextDir: child, NoNetwork: true, Output: &out, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err == nil {
		rt.RemoveImage(ctx, img.ID)
		t.Errorf("the untrusted build FROM %s passed the check and built", tag)
	}
	t.Logf("untrusted Build: %v\n%s", err, out.String())
	if n := hits.Load(); n != 0 {
		t.Errorf("the untrusted build fetched the URL %d times (%v)", n, err)
	}
	if err == nil || !strings.Contains(err.Error(), "spans lines") {
		t.Errorf("untrusted Build: %v, want the check to refuse the trigger", err)
	}
}

// loadImageWithTriggers loads (docker load: no registry, no network) an
// image of one empty layer whose config has the ONBUILD triggers given, as
// any image on a registry may have, removed when the test ends; it returns
// its tag.
func loadImageWithTriggers(ctx context.Context, t *testing.T, rt *Runtime, triggers ...string) string {
	t.Helper()
	tag := "cutover-test/triggers:" + randomHex(6)
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	lw.WriteHeader(&tar.Header{Name: "layer.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	lw.Write([]byte("l\n"))
	lw.Close()
	sum := sha256.Sum256(layer.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"OnBuild": triggers},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(sum[:])}},
	})
	csum := sha256.Sum256(config)
	configName := hex.EncodeToString(csum[:]) + ".json"
	manifest, _ := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{tag}, "Layers": []string{"l/layer.tar"}}})
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for _, f := range []struct {
		name string
		data []byte
	}{{configName, config}, {"l/layer.tar", layer.Bytes()}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		tw.Write(f.data)
	}
	tw.Close()
	res, err := rt.client.ImageLoad(ctx, &archive)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res)
	res.Close()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rt.RemoveImage(ctx, tag)
	})
	if !strings.Contains(string(msg), tag) {
		t.Fatalf("docker load: %s", msg)
	}
	return tag
}
