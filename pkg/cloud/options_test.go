package cloud

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestAddFlagsRegistersTheCloudFlags(t *testing.T) {
	o := NewOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	slices.Sort(names)
	want := []string{
		"cloud-burst", "cloud-call-timeout", "cloud-config", "cloud-insecure-http", "cloud-qps", "credential-source", "credentials-dir",
		"ecs-endpoint", "instance-release-grace", "metadata-endpoint", "permission-check-interval", "ram-role", "region", "route-table-ids", "route-table-quota",
		"route-wait-timeout", "sts-endpoint", "vpc-endpoint", "vpc-id",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("flags %v, want %v", names, want)
	}
	err := fs.Parse([]string{
		"--region=cn-chengdu", "--vpc-id=vpc-1", "--route-table-ids=vtb-a,vtb-b", "--cloud-qps=3.5", "--cloud-burst=7",
		"--cloud-call-timeout=5s", "--route-wait-timeout=1m", "--route-table-quota=400", "--vpc-endpoint=127.0.0.1:9",
		"--cloud-insecure-http", "--instance-release-grace=10m", "--permission-check-interval=30s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.Region != "cn-chengdu" || o.VPCID != "vpc-1" || !slices.Equal(o.RouteTableIDs, []string{"vtb-a", "vtb-b"}) || o.QPS != 3.5 ||
		o.Burst != 7 || o.CallTimeout != 5*time.Second || o.RouteWaitTimeout != time.Minute || o.RouteTableQuota != 400 ||
		o.VPCEndpoint != "127.0.0.1:9" || !o.InsecureHTTP || o.InstanceReleaseGrace != 10*time.Minute || o.PermissionCheckInterval != 30*time.Second {
		t.Errorf("parsed options %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	o := NewOptions()
	if o.QPS != 10 || o.Burst != 20 || o.CallTimeout != 30*time.Second || o.RouteWaitTimeout != 2*time.Minute ||
		o.RouteTableQuota != 200 || o.MetadataEndpoint != "http://100.100.100.200" || o.InsecureHTTP {
		t.Errorf("defaults %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if got := defaultEndpoint("vpc", "cn-chengdu"); got != "vpc-vpc.cn-chengdu.aliyuncs.com" {
		t.Errorf("default VPC endpoint %s", got)
	}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Options)
		flag   string
	}{
		"region":            {func(o *Options) { o.Region = "cn_chengdu" }, "--region"},
		"vpc":               {func(o *Options) { o.VPCID = "vtb-1" }, "--vpc-id"},
		"table":             {func(o *Options) { o.RouteTableIDs = []string{"vpc-1"} }, "--route-table-ids"},
		"duplicate table":   {func(o *Options) { o.RouteTableIDs = []string{"vtb-1", "vtb-1"} }, "twice"},
		"http without flag": {func(o *Options) { o.VPCEndpoint = "http://127.0.0.1:1" }, "--vpc-endpoint"},
		"https with flag":   {func(o *Options) { o.ECSEndpoint = "https://x"; o.InsecureHTTP = true }, "--ecs-endpoint"},
		"path":              {func(o *Options) { o.STSEndpoint = "sts.example/path" }, "--sts-endpoint"},
		"metadata":          {func(o *Options) { o.MetadataEndpoint = "100.100.100.200" }, "--metadata-endpoint"},
		"qps":               {func(o *Options) { o.QPS = 0 }, "--cloud-qps"},
		"burst":             {func(o *Options) { o.Burst = 0 }, "--cloud-burst"},
		"call timeout":      {func(o *Options) { o.CallTimeout = 0 }, "--cloud-call-timeout"},
		"wait timeout":      {func(o *Options) { o.RouteWaitTimeout = -time.Second }, "--route-wait-timeout"},
		"quota":             {func(o *Options) { o.RouteTableQuota = 0 }, "--route-table-quota"},
		"release grace":     {func(o *Options) { o.InstanceReleaseGrace = -time.Second }, "--instance-release-grace"},
		"probe interval":    {func(o *Options) { o.PermissionCheckInterval = 0 }, "--permission-check-interval"},
	} {
		o := NewOptions()
		tc.mutate(o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s: Validate = %v, want an error naming %s", name, err, tc.flag)
		}
	}
	o := NewOptions()
	o.VPCEndpoint, o.InsecureHTTP = "http://127.0.0.1:8080/", true
	if err := o.Validate(); err != nil {
		t.Errorf("URL endpoint with --cloud-insecure-http: %v", err)
	}
	if got, _ := normalizeEndpoint(o.VPCEndpoint, true); got != "127.0.0.1:8080" {
		t.Errorf("normalized endpoint %q", got)
	}
}
