package framework

import (
	"context"
	"net/http"
	"net/url"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// SetPrimaryENICheck turns the source/destination check of an instance's
// primary ENI on or off out of band, as a user of the console would.
func (s *Alisim) SetPrimaryENICheck(ctx context.Context, instanceID string, on bool) error {
	return s.do(ctx, http.MethodPatch, "/admin/instances/"+url.PathEscape(instanceID)+"/primary-eni", map[string]bool{"sourceDestCheck": on}, nil)
}

// PrimaryENI returns an instance's primary ENI.
func (s *Alisim) PrimaryENI(ctx context.Context, instanceID string) (alisim.NetworkInterface, error) {
	var enis []alisim.NetworkInterface
	if err := s.do(ctx, http.MethodGet, "/admin/enis?instance="+url.QueryEscape(instanceID), nil, &enis); err != nil {
		return alisim.NetworkInterface{}, err
	}
	for _, e := range enis {
		if e.Type == alisim.ENITypePrimary {
			return e, nil
		}
	}
	return alisim.NetworkInterface{}, errNoPrimaryENI(instanceID)
}

type errNoPrimaryENI string

func (e errNoPrimaryENI) Error() string { return "instance " + string(e) + " has no primary ENI" }
