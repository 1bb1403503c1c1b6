package route_test

import (
	"fmt"
	"net/netip"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

func ExampleDiff() {
	policy := route.Policy{
		ClusterID:      "prod",
		ClusterCIDRs:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")},
		MaxDeleteRatio: 0.5,
	}
	p := netip.MustParsePrefix
	desired := []route.Route{
		{Table: "vtb-1", Destination: p("10.0.1.0/24"), NextHop: "i-a", Node: "node-a"},
		{Table: "vtb-1", Destination: p("10.0.2.0/24"), NextHop: "i-b", Node: "node-b"},
		{Table: "vtb-1", Destination: p("10.0.3.0/24"), NextHop: "i-c", Node: "node-c"},
	}
	current := []route.Route{
		// Ours and correct.
		{Table: "vtb-1", Destination: p("10.0.1.0/24"), NextHop: "i-a", Owner: "prod", Node: "node-a", Status: route.StatusAvailable},
		// A user's entry on node-b's destination: a conflict, left alone.
		{Table: "vtb-1", Destination: p("10.0.2.0/24"), NextHop: "i-user", EntryID: "rte-42", Status: route.StatusAvailable},
		// Ours, for a node deleted while the controller was down.
		{Table: "vtb-1", Destination: p("10.0.9.0/24"), NextHop: "i-z", Owner: "prod", Node: "node-z", Status: route.StatusAvailable},
	}
	plan := route.Diff(desired, current, policy, route.Facts{})
	fmt.Println("create:", plan.Create)
	fmt.Println("delete:", plan.Delete)
	fmt.Println("in sync:", plan.InSync)
	fmt.Println("conflict:", plan.Conflicts[0].Message())
	// Output:
	// create: [10.0.3.0/24 -> i-c in vtb-1]
	// delete: [10.0.9.0/24 -> i-z in vtb-1]
	// in sync: [10.0.1.0/24 -> i-a in vtb-1]
	// conflict: destination 10.0.2.0/24 in route table vtb-1 is already routed to i-user by entry rte-42, which carries no ownership marker
}
