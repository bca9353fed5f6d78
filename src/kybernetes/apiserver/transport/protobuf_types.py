"""Field tables for decoding Kubernetes protobuf bodies (see :mod:`kybernetes.apiserver.transport.protobuf`).

One compact text block per API package. Each line describes one message::

    MessageName: <number>:<jsonName>[:<type>] ...

``<type>`` defaults to ``s`` and is one of

* ``s`` string, ``i`` integer (any varint width, signed), ``b`` bool, ``y`` bytes (base64 in JSON);
* a message name, looked up in the same package, then ``core``, then ``meta``; the well-known
  apimachinery types ``Time``, ``MicroTime``, ``Duration``, ``Quantity``, ``IntOrString``,
  ``FieldsV1`` and ``RawExtension`` are converted by the decoder itself;
* ``*T`` a repeated field, ``{T}`` a ``map<string, T>``;
* ``^T`` an embedded Go struct whose JSON fields are inlined into the parent (``json:",inline"``).

A trailing ``!`` marks a field whose zero value must survive decoding: Go pointer fields
(``replicas: 0`` differs from no replicas) and fields without ``omitempty`` (``value: 0`` of a
PriorityClass). Without it, a zero scalar is dropped, because go-to-protobuf writes every
non-pointer scalar even when it is zero, while Go's JSON encoder omits it.

``Name: =Other`` declares a message with the same fields as ``Other``; ``Name: =list`` declares a
wrapper whose only field (1, repeated string) is a bare list in JSON; ``Name+: ...`` appends fields
to a message declared earlier (keeps lines short).

The field numbers and names are facts read from the ``generated.proto`` files of k8s.io/api and
k8s.io/apimachinery; the names here are the JSON names, which differ from the proto names in a few
places (``apiVersion`` for ``aPIVersion``, ``Raw`` is not a JSON field at all).
"""

from __future__ import annotations

_META = """
Condition: 1:type 2:status 3:observedGeneration:i 4:lastTransitionTime:Time! 5:reason 6:message:s!
CreateOptions: 1:dryRun:*s 3:fieldManager 4:fieldValidation
DeleteOptions: 1:gracePeriodSeconds:i! 2:preconditions:Preconditions 3:orphanDependents:b! 4:propagationPolicy:s! 5:dryRun:*s 6:ignoreStoreReadErrorWithClusterBreakingPotential:b!
Preconditions: 1:uid:s! 2:resourceVersion:s!
GroupVersionKind: 1:group 2:version 3:kind
LabelSelector: 1:matchLabels:{s} 2:matchExpressions:*LabelSelectorRequirement
LabelSelectorRequirement: 1:key 2:operator 3:values:*s
ListMeta: 1:selfLink 2:resourceVersion 3:continue 4:remainingItemCount:i!
ManagedFieldsEntry: 1:manager 2:operation 3:apiVersion 4:time:Time 6:fieldsType 7:fieldsV1:FieldsV1 8:subresource
ObjectMeta: 1:name 2:generateName 3:namespace 4:selfLink 5:uid 6:resourceVersion 7:generation:i 8:creationTimestamp:Time 9:deletionTimestamp:Time 10:deletionGracePeriodSeconds:i! 11:labels:{s} 12:annotations:{s} 13:ownerReferences:*OwnerReference 14:finalizers:*s 17:managedFields:*ManagedFieldsEntry
OwnerReference: 5:apiVersion 1:kind 3:name 4:uid 6:controller:b! 7:blockOwnerDeletion:b!
PatchOptions: 1:dryRun:*s 2:force:b! 3:fieldManager 4:fieldValidation
"""

_CORE = """
AWSElasticBlockStoreVolumeSource: 1:volumeID 2:fsType 3:partition:i 4:readOnly:b
Affinity: 1:nodeAffinity:NodeAffinity 2:podAffinity:PodAffinity 3:podAntiAffinity:PodAntiAffinity
AzureDiskVolumeSource: 1:diskName 2:diskURI 3:cachingMode 4:fsType 5:readOnly:b! 6:kind
AzureFileVolumeSource: 1:secretName 2:shareName 3:readOnly:b
Binding: 1:metadata:ObjectMeta 2:target:ObjectReference
CSIVolumeSource: 1:driver 2:readOnly:b! 3:fsType 4:volumeAttributes:{s} 5:nodePublishSecretRef:LocalObjectReference
Capabilities: 1:add:*s 2:drop:*s
CephFSVolumeSource: 1:monitors:*s 2:path 3:user 4:secretFile 5:secretRef:LocalObjectReference 6:readOnly:b
CinderVolumeSource: 1:volumeID 2:fsType 3:readOnly:b 4:secretRef:LocalObjectReference
ClientIPConfig: 1:timeoutSeconds:i!
ConfigMap: 1:metadata:ObjectMeta 2:data:{s} 3:binaryData:{y} 4:immutable:b!
ConfigMapEnvSource: 1:^LocalObjectReference 2:optional:b!
ConfigMapKeySelector: 1:^LocalObjectReference 2:key 3:optional:b!
ConfigMapProjection: 1:^LocalObjectReference 2:items:*KeyToPath 4:optional:b!
ConfigMapVolumeSource: 1:^LocalObjectReference 2:items:*KeyToPath 3:defaultMode:i! 4:optional:b!
AppArmorProfile: 1:type 2:localhostProfile
CSIPersistentVolumeSource: 1:driver 2:volumeHandle 3:readOnly:b 4:fsType 5:volumeAttributes:{s} 6:controllerPublishSecretRef:SecretReference 7:nodeStageSecretRef:SecretReference 8:nodePublishSecretRef:SecretReference 9:controllerExpandSecretRef:SecretReference 10:nodeExpandSecretRef:SecretReference
ClusterTrustBundleProjection: 1:name 2:signerName 3:labelSelector:LabelSelector 5:optional:b! 4:path
Container: 1:name 2:image 3:command:*s 4:args:*s 5:workingDir 6:ports:*ContainerPort 19:envFrom:*EnvFromSource 7:env:*EnvVar 8:resources:ResourceRequirements 23:resizePolicy:*ContainerResizePolicy 24:restartPolicy 25:restartPolicyRules:*ContainerRestartRule 9:volumeMounts:*VolumeMount 21:volumeDevices:*VolumeDevice 10:livenessProbe:Probe 11:readinessProbe:Probe 22:startupProbe:Probe 12:lifecycle:Lifecycle 13:terminationMessagePath 20:terminationMessagePolicy 14:imagePullPolicy 15:securityContext:SecurityContext 16:stdin:b 17:stdinOnce:b 18:tty:b
ContainerImage: 1:names:*s 2:sizeBytes:i
ContainerPort: 1:name 2:hostPort:i 3:containerPort:i! 4:protocol 5:hostIP
ContainerResizePolicy: 1:resourceName 2:restartPolicy
ContainerRestartRule: 1:action 2:exitCodes:ContainerRestartRuleOnExitCodes
ContainerRestartRuleOnExitCodes: 1:operator 2:values:*i
ContainerState: 1:waiting:ContainerStateWaiting 2:running:ContainerStateRunning 3:terminated:ContainerStateTerminated
ContainerStateRunning: 1:startedAt:Time
ContainerStateTerminated: 1:exitCode:i! 2:signal:i 3:reason 4:message 5:startedAt:Time 6:finishedAt:Time 7:containerID
ContainerStateWaiting: 1:reason 2:message
ContainerStatus: 1:name 2:state:ContainerState 3:lastState:ContainerState 4:ready:b! 5:restartCount:i! 6:image:s! 7:imageID:s! 8:containerID 9:started:b! 10:allocatedResources:{Quantity} 11:resources:ResourceRequirements 12:volumeMounts:*VolumeMountStatus 13:user:ContainerUser 14:allocatedResourcesStatus:*ResourceStatus 15:stopSignal
ContainerUser: 1:linux:LinuxContainerUser
DaemonEndpoint: 1:Port:i!
DownwardAPIProjection: 1:items:*DownwardAPIVolumeFile
DownwardAPIVolumeFile: 1:path 2:fieldRef:ObjectFieldSelector 3:resourceFieldRef:ResourceFieldSelector 4:mode:i!
DownwardAPIVolumeSource: 1:items:*DownwardAPIVolumeFile 2:defaultMode:i!
EmptyDirVolumeSource: 1:medium 2:sizeLimit:Quantity
EndpointAddress: 1:ip 3:hostname 4:nodeName:s! 2:targetRef:ObjectReference
EndpointPort: 1:name 2:port:i! 3:protocol 4:appProtocol:s!
EndpointSubset: 1:addresses:*EndpointAddress 2:notReadyAddresses:*EndpointAddress 3:ports:*EndpointPort
Endpoints: 1:metadata:ObjectMeta 2:subsets:*EndpointSubset
EnvFromSource: 1:prefix 2:configMapRef:ConfigMapEnvSource 3:secretRef:SecretEnvSource
EnvVar: 1:name 2:value 3:valueFrom:EnvVarSource
EnvVarSource: 1:fieldRef:ObjectFieldSelector 2:resourceFieldRef:ResourceFieldSelector 3:configMapKeyRef:ConfigMapKeySelector 4:secretKeyRef:SecretKeySelector 5:fileKeyRef:FileKeySelector
EphemeralContainer: 1:^EphemeralContainerCommon 2:targetContainerName
EphemeralContainerCommon: =Container
EphemeralVolumeSource: 1:volumeClaimTemplate:PersistentVolumeClaimTemplate
Event: 1:metadata:ObjectMeta 2:involvedObject:ObjectReference 3:reason 4:message 5:source:EventSource 6:firstTimestamp:Time 7:lastTimestamp:Time 8:count:i 9:type 10:eventTime:MicroTime! 11:series:EventSeries 12:action 13:related:ObjectReference 14:reportingComponent:s! 15:reportingInstance:s!
EventSeries: 1:count:i 2:lastObservedTime:MicroTime
EventSource: 1:component 2:host
ExecAction: 1:command:*s
FCVolumeSource: 1:targetWWNs:*s 2:lun:i! 3:fsType 4:readOnly:b 5:wwids:*s
FileKeySelector: 1:volumeName 2:path 3:key 4:optional:b!
FlexVolumeSource: 1:driver 2:fsType 3:secretRef:LocalObjectReference 4:readOnly:b 5:options:{s}
FlockerVolumeSource: 1:datasetName 2:datasetUUID
GCEPersistentDiskVolumeSource: 1:pdName 2:fsType 3:partition:i 4:readOnly:b
GRPCAction: 1:port:i! 2:service:s!
GitRepoVolumeSource: 1:repository 2:revision 3:directory
GlusterfsVolumeSource: 1:endpoints 2:path 3:readOnly:b
HTTPGetAction: 1:path 2:port:IntOrString 3:host 4:scheme 5:httpHeaders:*HTTPHeader
HTTPHeader: 1:name 2:value:s!
HostAlias: 1:ip 2:hostnames:*s
HostIP: 1:ip
HostPathVolumeSource: 1:path 2:type:s!
ISCSIVolumeSource: 1:targetPortal 2:iqn 3:lun:i! 4:iscsiInterface 5:fsType 6:readOnly:b 7:portals:*s 8:chapAuthDiscovery:b 11:chapAuthSession:b 10:secretRef:LocalObjectReference 12:initiatorName:s!
ImageVolumeSource: 1:reference 2:pullPolicy
KeyToPath: 1:key 2:path 3:mode:i!
Lifecycle: 1:postStart:LifecycleHandler 2:preStop:LifecycleHandler 3:stopSignal
LifecycleHandler: 1:exec:ExecAction 2:httpGet:HTTPGetAction 3:tcpSocket:TCPSocketAction 4:sleep:SleepAction
LimitRange: 1:metadata:ObjectMeta 2:spec:LimitRangeSpec
LimitRangeItem: 1:type 2:max:{Quantity} 3:min:{Quantity} 4:default:{Quantity} 5:defaultRequest:{Quantity} 6:maxLimitRequestRatio:{Quantity}
LimitRangeSpec: 1:limits:*LimitRangeItem
LinuxContainerUser: 1:uid:i! 2:gid:i! 3:supplementalGroups:*i
LoadBalancerIngress: 1:ip 2:hostname 3:ipMode 4:ports:*PortStatus
LoadBalancerStatus: 1:ingress:*LoadBalancerIngress
LocalObjectReference: 1:name
LocalVolumeSource: 1:path 2:fsType
NFSVolumeSource: 1:server 2:path 3:readOnly:b
Namespace: 1:metadata:ObjectMeta 2:spec:NamespaceSpec 3:status:NamespaceStatus
NamespaceCondition: 1:type 2:status 4:lastTransitionTime:Time 5:reason 6:message
NamespaceSpec: 1:finalizers:*s
NamespaceStatus: 1:phase 2:conditions:*NamespaceCondition
Node: 1:metadata:ObjectMeta 2:spec:NodeSpec 3:status:NodeStatus
NodeAddress: 1:type 2:address
NodeAffinity: 1:requiredDuringSchedulingIgnoredDuringExecution:NodeSelector 2:preferredDuringSchedulingIgnoredDuringExecution:*PreferredSchedulingTerm
NodeCondition: 1:type 2:status 3:lastHeartbeatTime:Time 4:lastTransitionTime:Time 5:reason 6:message
NodeDaemonEndpoints: 1:kubeletEndpoint:DaemonEndpoint
NodeSelector: 1:nodeSelectorTerms:*NodeSelectorTerm
NodeSelectorRequirement: 1:key 2:operator 3:values:*s
NodeSelectorTerm: 1:matchExpressions:*NodeSelectorRequirement 2:matchFields:*NodeSelectorRequirement
NodeSpec: 1:podCIDR 7:podCIDRs:*s 3:providerID 4:unschedulable:b 5:taints:*Taint 2:externalID
NodeStatus: 1:capacity:{Quantity} 2:allocatable:{Quantity} 3:phase 4:conditions:*NodeCondition 5:addresses:*NodeAddress 6:daemonEndpoints:NodeDaemonEndpoints 8:images:*ContainerImage 9:volumesInUse:*s 10:volumesAttached:*AttachedVolume 14:declaredFeatures:*s
AttachedVolume: 1:name 2:devicePath
ObjectFieldSelector: 1:apiVersion 2:fieldPath
ObjectReference: 1:kind 2:namespace 3:name 4:uid 5:apiVersion 6:resourceVersion 7:fieldPath
PersistentVolumeClaim: 1:metadata:ObjectMeta 2:spec:PersistentVolumeClaimSpec 3:status:PersistentVolumeClaimStatus
PersistentVolumeClaimCondition: 1:type 2:status 3:lastProbeTime:Time 4:lastTransitionTime:Time 5:reason 6:message
PersistentVolumeClaimSpec: 1:accessModes:*s 4:selector:LabelSelector 2:resources:VolumeResourceRequirements 3:volumeName 5:storageClassName:s! 6:volumeMode:s! 7:dataSource:TypedLocalObjectReference 8:dataSourceRef:TypedObjectReference 9:volumeAttributesClassName:s!
PersistentVolumeClaimStatus: 1:phase 2:accessModes:*s 3:capacity:{Quantity} 4:conditions:*PersistentVolumeClaimCondition 5:allocatedResources:{Quantity} 7:allocatedResourceStatuses:{s} 8:currentVolumeAttributesClassName:s! 9:modifyVolumeStatus:ModifyVolumeStatus
ModifyVolumeStatus: 1:targetVolumeAttributesClassName 2:status
PersistentVolumeClaimTemplate: 1:metadata:ObjectMeta 2:spec:PersistentVolumeClaimSpec
PersistentVolumeClaimVolumeSource: 1:claimName 2:readOnly:b
PersistentVolume: 1:metadata:ObjectMeta 2:spec:PersistentVolumeSpec 3:status:PersistentVolumeStatus
PersistentVolumeSource: 1:gcePersistentDisk:GCEPersistentDiskVolumeSource 2:awsElasticBlockStore:AWSElasticBlockStoreVolumeSource 3:hostPath:HostPathVolumeSource 5:nfs:NFSVolumeSource 10:fc:FCVolumeSource 11:flocker:FlockerVolumeSource 16:azureDisk:AzureDiskVolumeSource 20:local:LocalVolumeSource 22:csi:CSIPersistentVolumeSource
PersistentVolumeSpec: 1:capacity:{Quantity} 2:^PersistentVolumeSource 3:accessModes:*s 4:claimRef:ObjectReference 5:persistentVolumeReclaimPolicy 6:storageClassName 7:mountOptions:*s 8:volumeMode:s! 9:nodeAffinity:VolumeNodeAffinity 10:volumeAttributesClassName:s!
PersistentVolumeStatus: 1:phase 2:message 3:reason 4:lastPhaseTransitionTime:Time
Pod: 1:metadata:ObjectMeta 2:spec:PodSpec 3:status:PodStatus
PodAffinity: 1:requiredDuringSchedulingIgnoredDuringExecution:*PodAffinityTerm 2:preferredDuringSchedulingIgnoredDuringExecution:*WeightedPodAffinityTerm
PodAffinityTerm: 1:labelSelector:LabelSelector 2:namespaces:*s 3:topologyKey 4:namespaceSelector:LabelSelector 5:matchLabelKeys:*s 6:mismatchLabelKeys:*s
PodAntiAffinity: 1:requiredDuringSchedulingIgnoredDuringExecution:*PodAffinityTerm 2:preferredDuringSchedulingIgnoredDuringExecution:*WeightedPodAffinityTerm
PodCertificateProjection: 1:signerName 2:keyType 3:maxExpirationSeconds:i! 4:credentialBundlePath 5:keyPath 6:certificateChainPath 7:userAnnotations:{s}
PodCondition: 1:type 7:observedGeneration:i 2:status 3:lastProbeTime:Time 4:lastTransitionTime:Time 5:reason 6:message
PodDNSConfig: 1:nameservers:*s 2:searches:*s 3:options:*PodDNSConfigOption
PodDNSConfigOption: 1:name 2:value:s!
PodExtendedResourceClaimStatus: 1:requestMappings:*ContainerExtendedResourceRequest 2:resourceClaimName
ContainerExtendedResourceRequest: 1:containerName 2:resourceName 3:requestName
PodIP: 1:ip
PodOS: 1:name
PodReadinessGate: 1:conditionType
PodResourceClaim: 1:name 3:resourceClaimName:s! 4:resourceClaimTemplateName:s!
PodResourceClaimStatus: 1:name 2:resourceClaimName:s!
PodSchedulingGate: 1:name
PodSecurityContext: 1:seLinuxOptions:SELinuxOptions 8:windowsOptions:WindowsSecurityContextOptions 2:runAsUser:i! 6:runAsGroup:i! 3:runAsNonRoot:b! 4:supplementalGroups:*i 12:supplementalGroupsPolicy 5:fsGroup:i! 7:sysctls:*Sysctl 9:fsGroupChangePolicy 10:seccompProfile:SeccompProfile 11:appArmorProfile:AppArmorProfile 13:seLinuxChangePolicy
PodSpec: 1:volumes:*Volume 20:initContainers:*Container 2:containers:*Container 34:ephemeralContainers:*EphemeralContainer 3:restartPolicy 4:terminationGracePeriodSeconds:i! 5:activeDeadlineSeconds:i! 6:dnsPolicy 7:nodeSelector:{s} 8:serviceAccountName 9:serviceAccount 21:automountServiceAccountToken:b! 10:nodeName 11:hostNetwork:b 12:hostPID:b 13:hostIPC:b 27:shareProcessNamespace:b! 14:securityContext:PodSecurityContext 15:imagePullSecrets:*LocalObjectReference 16:hostname 17:subdomain 18:affinity:Affinity 19:schedulerName 22:tolerations:*Toleration 23:hostAliases:*HostAlias 24:priorityClassName 25:priority:i! 26:dnsConfig:PodDNSConfig 28:readinessGates:*PodReadinessGate 29:runtimeClassName:s! 30:enableServiceLinks:b! 31:preemptionPolicy:s! 32:overhead:{Quantity} 33:topologySpreadConstraints:*TopologySpreadConstraint 35:setHostnameAsFQDN:b! 36:os:PodOS 37:hostUsers:b! 38:schedulingGates:*PodSchedulingGate 39:resourceClaims:*PodResourceClaim 40:resources:ResourceRequirements 41:hostnameOverride:s! 42:workloadRef:WorkloadReference
PodStatus: 17:observedGeneration:i 1:phase 2:conditions:*PodCondition 3:message 4:reason 11:nominatedNodeName 5:hostIP 16:hostIPs:*HostIP 6:podIP 12:podIPs:*PodIP 7:startTime:Time 10:initContainerStatuses:*ContainerStatus 8:containerStatuses:*ContainerStatus 9:qosClass 13:ephemeralContainerStatuses:*ContainerStatus 14:resize 15:resourceClaimStatuses:*PodResourceClaimStatus 18:extendedResourceClaimStatus:PodExtendedResourceClaimStatus 19:allocatedResources:{Quantity} 20:resources:ResourceRequirements
PodTemplate: 1:metadata:ObjectMeta 2:template:PodTemplateSpec
PodTemplateSpec: 1:metadata:ObjectMeta 2:spec:PodSpec
PortStatus: 1:port:i! 2:protocol 3:error:s!
PortworxVolumeSource: 1:volumeID 2:fsType 3:readOnly:b
PreferredSchedulingTerm: 1:weight:i! 2:preference:NodeSelectorTerm
Probe: 1:^ProbeHandler 2:initialDelaySeconds:i 3:timeoutSeconds:i 4:periodSeconds:i 5:successThreshold:i 6:failureThreshold:i 7:terminationGracePeriodSeconds:i!
ProbeHandler: 1:exec:ExecAction 2:httpGet:HTTPGetAction 3:tcpSocket:TCPSocketAction 4:grpc:GRPCAction
ProjectedVolumeSource: 1:sources:*VolumeProjection 2:defaultMode:i!
QuobyteVolumeSource: 1:registry 2:volume 3:readOnly:b 4:user 5:group 6:tenant
RBDVolumeSource: 1:monitors:*s 2:image 3:fsType 4:pool 5:user 6:keyring 7:secretRef:LocalObjectReference 8:readOnly:b
ReplicationController: 1:metadata:ObjectMeta 2:spec:ReplicationControllerSpec 3:status:ReplicationControllerStatus
ReplicationControllerCondition: 1:type 2:status 3:lastTransitionTime:Time 4:reason 5:message
ReplicationControllerSpec: 1:replicas:i! 4:minReadySeconds:i 2:selector:{s} 3:template:PodTemplateSpec
ReplicationControllerStatus: 1:replicas:i! 2:fullyLabeledReplicas:i 4:readyReplicas:i 5:availableReplicas:i 3:observedGeneration:i 6:conditions:*ReplicationControllerCondition
ResourceClaim: 1:name 2:request
ResourceFieldSelector: 1:containerName 2:resource 3:divisor:Quantity
ResourceHealth: 1:resourceID 2:health 6:message:s!
ResourceQuota: 1:metadata:ObjectMeta 2:spec:ResourceQuotaSpec 3:status:ResourceQuotaStatus
ResourceQuotaSpec: 1:hard:{Quantity} 2:scopes:*s 3:scopeSelector:ScopeSelector
ResourceQuotaStatus: 1:hard:{Quantity} 2:used:{Quantity}
ResourceRequirements: 1:limits:{Quantity} 2:requests:{Quantity} 3:claims:*ResourceClaim
ResourceStatus: 1:name 2:resources:*ResourceHealth
SELinuxOptions: 1:user 2:role 3:type 4:level
ScaleIOVolumeSource: 1:gateway 2:system 3:secretRef:LocalObjectReference 4:sslEnabled:b 5:protectionDomain 6:storagePool 7:storageMode 8:volumeName 9:fsType 10:readOnly:b
ScopeSelector: 1:matchExpressions:*ScopedResourceSelectorRequirement
ScopedResourceSelectorRequirement: 1:scopeName 2:operator 3:values:*s
SeccompProfile: 1:type 2:localhostProfile:s!
Secret: 1:metadata:ObjectMeta 5:immutable:b! 2:data:{y} 4:stringData:{s} 3:type
SecretEnvSource: 1:^LocalObjectReference 2:optional:b!
SecretKeySelector: 1:^LocalObjectReference 2:key 3:optional:b!
SecretProjection: 1:^LocalObjectReference 2:items:*KeyToPath 4:optional:b!
SecretReference: 1:name 2:namespace
SecretVolumeSource: 1:secretName 2:items:*KeyToPath 3:defaultMode:i! 4:optional:b!
SecurityContext: 1:capabilities:Capabilities 2:privileged:b! 3:seLinuxOptions:SELinuxOptions 10:windowsOptions:WindowsSecurityContextOptions 4:runAsUser:i! 8:runAsGroup:i! 5:runAsNonRoot:b! 6:readOnlyRootFilesystem:b! 7:allowPrivilegeEscalation:b! 9:procMount:s! 11:seccompProfile:SeccompProfile 12:appArmorProfile:AppArmorProfile 13:ulimits:*Ulimit
Service: 1:metadata:ObjectMeta 2:spec:ServiceSpec 3:status:ServiceStatus
ServiceAccount: 1:metadata:ObjectMeta 2:secrets:*ObjectReference 3:imagePullSecrets:*LocalObjectReference 4:automountServiceAccountToken:b!
ServiceAccountTokenProjection: 1:audience 2:expirationSeconds:i! 3:path
ServicePort: 1:name 2:protocol 6:appProtocol:s! 3:port:i! 4:targetPort:IntOrString 5:nodePort:i
ServiceSpec: 1:ports:*ServicePort 2:selector:{s} 3:clusterIP 18:clusterIPs:*s 4:type 5:externalIPs:*s 7:sessionAffinity 8:loadBalancerIP 9:loadBalancerSourceRanges:*s 10:externalName 11:externalTrafficPolicy 12:healthCheckNodePort:i 13:publishNotReadyAddresses:b 14:sessionAffinityConfig:SessionAffinityConfig 19:ipFamilies:*s 17:ipFamilyPolicy:s! 20:allocateLoadBalancerNodePorts:b! 21:loadBalancerClass:s! 22:internalTrafficPolicy:s! 23:trafficDistribution:s!
ServiceStatus: 1:loadBalancer:LoadBalancerStatus 2:conditions:*Condition
SessionAffinityConfig: 1:clientIP:ClientIPConfig
SleepAction: 1:seconds:i!
StorageOSVolumeSource: 1:volumeName 2:volumeNamespace 3:fsType 4:readOnly:b 5:secretRef:LocalObjectReference
Sysctl: 1:name 2:value:s!
TCPSocketAction: 1:port:IntOrString 2:host
Taint: 1:key 2:value 3:effect 4:timeAdded:Time
Toleration: 1:key 2:operator 3:value 4:effect 5:tolerationSeconds:i!
TopologySelectorLabelRequirement: 1:key 2:values:*s
TopologySelectorTerm: 1:matchLabelExpressions:*TopologySelectorLabelRequirement
TopologySpreadConstraint: 1:maxSkew:i! 2:topologyKey 3:whenUnsatisfiable 4:labelSelector:LabelSelector 5:minDomains:i! 6:nodeAffinityPolicy:s! 7:nodeTaintsPolicy:s! 8:matchLabelKeys:*s
TypedLocalObjectReference: 1:apiGroup:s! 2:kind 3:name
TypedObjectReference: 1:apiGroup:s! 2:kind 3:name 4:namespace:s!
Ulimit: 1:name 2:hard:i! 3:soft:i!
Volume: 1:name 2:^VolumeSource
VolumeDevice: 1:name 2:devicePath
VolumeMount: 1:name 2:readOnly:b 7:recursiveReadOnly:s! 3:mountPath 4:subPath 5:mountPropagation:s! 6:subPathExpr
VolumeMountStatus: 1:name 2:mountPath 3:readOnly:b 4:recursiveReadOnly:s!
VolumeNodeAffinity: 1:required:NodeSelector
VolumeProjection: 1:secret:SecretProjection 2:downwardAPI:DownwardAPIProjection 3:configMap:ConfigMapProjection 4:serviceAccountToken:ServiceAccountTokenProjection 5:clusterTrustBundle:ClusterTrustBundleProjection 6:podCertificate:PodCertificateProjection
VolumeResourceRequirements: 1:limits:{Quantity} 2:requests:{Quantity}
VolumeSource: 1:hostPath:HostPathVolumeSource 2:emptyDir:EmptyDirVolumeSource 3:gcePersistentDisk:GCEPersistentDiskVolumeSource 4:awsElasticBlockStore:AWSElasticBlockStoreVolumeSource 5:gitRepo:GitRepoVolumeSource 6:secret:SecretVolumeSource 7:nfs:NFSVolumeSource 8:iscsi:ISCSIVolumeSource 9:glusterfs:GlusterfsVolumeSource 10:persistentVolumeClaim:PersistentVolumeClaimVolumeSource 11:rbd:RBDVolumeSource 12:flexVolume:FlexVolumeSource 13:cinder:CinderVolumeSource 14:cephfs:CephFSVolumeSource 15:flocker:FlockerVolumeSource 16:downwardAPI:DownwardAPIVolumeSource 17:fc:FCVolumeSource 18:azureFile:AzureFileVolumeSource 19:configMap:ConfigMapVolumeSource 21:quobyte:QuobyteVolumeSource 22:azureDisk:AzureDiskVolumeSource 26:projected:ProjectedVolumeSource 24:portworxVolume:PortworxVolumeSource 25:scaleIO:ScaleIOVolumeSource 27:storageos:StorageOSVolumeSource 28:csi:CSIVolumeSource
VolumeSource+: 23:photonPersistentDisk:PhotonPersistentDiskVolumeSource 20:vsphereVolume:VsphereVirtualDiskVolumeSource 29:ephemeral:EphemeralVolumeSource 30:image:ImageVolumeSource
PhotonPersistentDiskVolumeSource: 1:pdID 2:fsType
VsphereVirtualDiskVolumeSource: 1:volumePath 2:fsType 3:storagePolicyName 4:storagePolicyID
VolumeStatus: 1:image:ImageVolumeStatus
ImageVolumeStatus: 1:imageRef
WeightedPodAffinityTerm: 1:weight:i! 2:podAffinityTerm:PodAffinityTerm
WindowsSecurityContextOptions: 1:gmsaCredentialSpecName:s! 2:gmsaCredentialSpec:s! 3:runAsUserName:s! 4:hostProcess:b!
WorkloadReference: 1:name 2:podGroup 3:podGroupReplicaKey
"""

_APPS = """
ControllerRevision: 1:metadata:ObjectMeta 2:data:RawExtension 3:revision:i!
DaemonSet: 1:metadata:ObjectMeta 2:spec:DaemonSetSpec 3:status:DaemonSetStatus
DaemonSetCondition: 1:type 2:status 3:lastTransitionTime:Time 4:reason 5:message
DaemonSetSpec: 1:selector:LabelSelector 2:template:PodTemplateSpec 3:updateStrategy:DaemonSetUpdateStrategy 4:minReadySeconds:i 6:revisionHistoryLimit:i!
DaemonSetStatus: 1:currentNumberScheduled:i! 2:numberMisscheduled:i! 3:desiredNumberScheduled:i! 4:numberReady:i! 5:observedGeneration:i 6:updatedNumberScheduled:i 7:numberAvailable:i 8:numberUnavailable:i 9:collisionCount:i! 10:conditions:*DaemonSetCondition
DaemonSetUpdateStrategy: 1:type 2:rollingUpdate:RollingUpdateDaemonSet
Deployment: 1:metadata:ObjectMeta 2:spec:DeploymentSpec 3:status:DeploymentStatus
DeploymentCondition: 1:type 2:status 6:lastUpdateTime:Time 7:lastTransitionTime:Time 4:reason 5:message
DeploymentSpec: 1:replicas:i! 2:selector:LabelSelector 3:template:PodTemplateSpec 4:strategy:DeploymentStrategy 5:minReadySeconds:i 6:revisionHistoryLimit:i! 7:paused:b 9:progressDeadlineSeconds:i! 10:podReplacementPolicy:s!
DeploymentStatus: 1:observedGeneration:i 2:replicas:i 3:updatedReplicas:i 7:readyReplicas:i 4:availableReplicas:i 5:unavailableReplicas:i 9:terminatingReplicas:i! 6:conditions:*DeploymentCondition 8:collisionCount:i!
DeploymentStrategy: 1:type 2:rollingUpdate:RollingUpdateDeployment
ReplicaSet: 1:metadata:ObjectMeta 2:spec:ReplicaSetSpec 3:status:ReplicaSetStatus
ReplicaSetCondition: 1:type 2:status 3:lastTransitionTime:Time 4:reason 5:message
ReplicaSetSpec: 1:replicas:i! 4:minReadySeconds:i 2:selector:LabelSelector 3:template:PodTemplateSpec
ReplicaSetStatus: 1:replicas:i! 2:fullyLabeledReplicas:i 4:readyReplicas:i 5:availableReplicas:i 7:terminatingReplicas:i! 3:observedGeneration:i 6:conditions:*ReplicaSetCondition
RollingUpdateDaemonSet: 1:maxUnavailable:IntOrString 2:maxSurge:IntOrString
RollingUpdateDeployment: 1:maxUnavailable:IntOrString 2:maxSurge:IntOrString
RollingUpdateStatefulSetStrategy: 1:partition:i! 2:maxUnavailable:IntOrString
StatefulSet: 1:metadata:ObjectMeta 2:spec:StatefulSetSpec 3:status:StatefulSetStatus
StatefulSetCondition: 1:type 2:status 3:lastTransitionTime:Time 4:reason 5:message
StatefulSetOrdinals: 1:start:i
StatefulSetPersistentVolumeClaimRetentionPolicy: 1:whenDeleted 2:whenScaled
StatefulSetSpec: 1:replicas:i! 2:selector:LabelSelector 3:template:PodTemplateSpec 4:volumeClaimTemplates:*PersistentVolumeClaim 5:serviceName 6:podManagementPolicy 7:updateStrategy:StatefulSetUpdateStrategy 8:revisionHistoryLimit:i! 9:minReadySeconds:i 10:persistentVolumeClaimRetentionPolicy:StatefulSetPersistentVolumeClaimRetentionPolicy 11:ordinals:StatefulSetOrdinals
StatefulSetStatus: 1:observedGeneration:i 2:replicas:i! 3:readyReplicas:i 4:currentReplicas:i 5:updatedReplicas:i 6:currentRevision 7:updateRevision 9:collisionCount:i! 10:conditions:*StatefulSetCondition 11:availableReplicas:i!
StatefulSetUpdateStrategy: 1:type 2:rollingUpdate:RollingUpdateStatefulSetStrategy
"""

_BATCH = """
CronJob: 1:metadata:ObjectMeta 2:spec:CronJobSpec 3:status:CronJobStatus
CronJobSpec: 1:schedule 8:timeZone:s! 2:startingDeadlineSeconds:i! 3:concurrencyPolicy 4:suspend:b! 5:jobTemplate:JobTemplateSpec 6:successfulJobsHistoryLimit:i! 7:failedJobsHistoryLimit:i!
CronJobStatus: 1:active:*ObjectReference 4:lastScheduleTime:Time 5:lastSuccessfulTime:Time
Job: 1:metadata:ObjectMeta 2:spec:JobSpec 3:status:JobStatus
JobCondition: 1:type 2:status 3:lastProbeTime:Time 4:lastTransitionTime:Time 5:reason 6:message
JobSpec: 1:parallelism:i! 2:completions:i! 3:activeDeadlineSeconds:i! 11:podFailurePolicy:PodFailurePolicy 16:successPolicy:SuccessPolicy 7:backoffLimit:i! 12:backoffLimitPerIndex:i! 13:maxFailedIndexes:i! 4:selector:LabelSelector 5:manualSelector:b! 6:template:PodTemplateSpec 8:ttlSecondsAfterFinished:i! 9:completionMode:s! 10:suspend:b! 14:podReplacementPolicy:s! 15:managedBy:s!
JobStatus: 1:conditions:*JobCondition 2:startTime:Time 3:completionTime:Time 4:active:i 5:succeeded:i 6:failed:i 11:terminating:i! 7:completedIndexes 10:failedIndexes:s! 8:uncountedTerminatedPods:UncountedTerminatedPods 9:ready:i!
JobTemplateSpec: 1:metadata:ObjectMeta 2:spec:JobSpec
PodFailurePolicy: 1:rules:*PodFailurePolicyRule
PodFailurePolicyOnExitCodesRequirement: 1:containerName:s! 2:operator 3:values:*i
PodFailurePolicyOnPodConditionsPattern: 1:type 2:status
PodFailurePolicyRule: 1:action 2:onExitCodes:PodFailurePolicyOnExitCodesRequirement 3:onPodConditions:*PodFailurePolicyOnPodConditionsPattern
SuccessPolicy: 1:rules:*SuccessPolicyRule
SuccessPolicyRule: 1:succeededIndexes:s! 2:succeededCount:i!
UncountedTerminatedPods: 1:succeeded:*s 2:failed:*s
"""

_RBAC = """
AggregationRule: 1:clusterRoleSelectors:*LabelSelector
ClusterRole: 1:metadata:ObjectMeta 2:rules:*PolicyRule 3:aggregationRule:AggregationRule
ClusterRoleBinding: 1:metadata:ObjectMeta 2:subjects:*Subject 3:roleRef:RoleRef
PolicyRule: 1:verbs:*s 2:apiGroups:*s 3:resources:*s 4:resourceNames:*s 5:nonResourceURLs:*s
Role: 1:metadata:ObjectMeta 2:rules:*PolicyRule
RoleBinding: 1:metadata:ObjectMeta 2:subjects:*Subject 3:roleRef:RoleRef
RoleRef: 1:apiGroup:s! 2:kind 3:name
Subject: 1:kind 2:apiGroup 3:name 4:namespace
"""

_POLICY = """
Eviction: 1:metadata:ObjectMeta 2:deleteOptions:DeleteOptions
PodDisruptionBudget: 1:metadata:ObjectMeta 2:spec:PodDisruptionBudgetSpec 3:status:PodDisruptionBudgetStatus
PodDisruptionBudgetSpec: 1:minAvailable:IntOrString 2:selector:LabelSelector 3:maxUnavailable:IntOrString 4:unhealthyPodEvictionPolicy:s!
PodDisruptionBudgetStatus: 1:observedGeneration:i 2:disruptedPods:{Time} 3:disruptionsAllowed:i! 4:currentHealthy:i! 5:desiredHealthy:i! 6:expectedPods:i! 7:conditions:*Condition
"""

_SCHEDULING = """
PriorityClass: 1:metadata:ObjectMeta 2:value:i! 3:globalDefault:b 4:description 5:preemptionPolicy:s!
"""

_NETWORKING = """
HTTPIngressPath: 1:path 3:pathType:s! 2:backend:IngressBackend
HTTPIngressRuleValue: 1:paths:*HTTPIngressPath
IPBlock: 1:cidr 2:except:*s
Ingress: 1:metadata:ObjectMeta 2:spec:IngressSpec 3:status:IngressStatus
IngressBackend: 4:service:IngressServiceBackend 3:resource:TypedLocalObjectReference
IngressClass: 1:metadata:ObjectMeta 2:spec:IngressClassSpec
IngressClassParametersReference: 1:apiGroup:s! 2:kind 3:name 4:scope:s! 5:namespace:s!
IngressClassSpec: 1:controller 2:parameters:IngressClassParametersReference
IngressLoadBalancerIngress: 1:ip 2:hostname 4:ports:*IngressPortStatus
IngressLoadBalancerStatus: 1:ingress:*IngressLoadBalancerIngress
IngressPortStatus: 1:port:i! 2:protocol 3:error:s!
IngressRule: 1:host 2:^IngressRuleValue
IngressRuleValue: 1:http:HTTPIngressRuleValue
IngressServiceBackend: 1:name 2:port:ServiceBackendPort
IngressSpec: 4:ingressClassName:s! 1:defaultBackend:IngressBackend 2:tls:*IngressTLS 3:rules:*IngressRule
IngressStatus: 1:loadBalancer:IngressLoadBalancerStatus
IngressTLS: 1:hosts:*s 2:secretName
NetworkPolicy: 1:metadata:ObjectMeta 2:spec:NetworkPolicySpec
NetworkPolicyEgressRule: 1:ports:*NetworkPolicyPort 2:to:*NetworkPolicyPeer
NetworkPolicyIngressRule: 1:ports:*NetworkPolicyPort 2:from:*NetworkPolicyPeer
NetworkPolicyPeer: 1:podSelector:LabelSelector 2:namespaceSelector:LabelSelector 3:ipBlock:IPBlock
NetworkPolicyPort: 1:protocol:s! 2:port:IntOrString 3:endPort:i!
NetworkPolicySpec: 1:podSelector:LabelSelector 2:ingress:*NetworkPolicyIngressRule 3:egress:*NetworkPolicyEgressRule 4:policyTypes:*s
ServiceBackendPort: 1:name 2:number:i
"""

_AUTHENTICATION = """
BoundObjectReference: 1:kind 2:apiVersion 3:name 4:uid
ExtraValue: =list
SelfSubjectReview: 1:metadata:ObjectMeta 2:status:SelfSubjectReviewStatus
SelfSubjectReviewStatus: 1:userInfo:UserInfo
TokenRequest: 1:metadata:ObjectMeta 2:spec:TokenRequestSpec 3:status:TokenRequestStatus
TokenRequestSpec: 1:audiences:*s 4:expirationSeconds:i! 3:boundObjectRef:BoundObjectReference
TokenRequestStatus: 1:token:s! 2:expirationTimestamp:Time!
TokenReview: 1:metadata:ObjectMeta 2:spec:TokenReviewSpec 3:status:TokenReviewStatus
TokenReviewSpec: 1:token 2:audiences:*s
TokenReviewStatus: 1:authenticated:b 2:user:UserInfo 4:audiences:*s 3:error
UserInfo: 1:username 2:uid 3:groups:*s 4:extra:{ExtraValue}
"""

_AUTHORIZATION = """
ExtraValue: =list
FieldSelectorAttributes: 1:rawSelector 2:requirements:*FieldSelectorRequirement
FieldSelectorRequirement: 1:key 2:operator 3:values:*s
LabelSelectorAttributes: 1:rawSelector 2:requirements:*LabelSelectorRequirement
LocalSubjectAccessReview: 1:metadata:ObjectMeta 2:spec:SubjectAccessReviewSpec 3:status:SubjectAccessReviewStatus
NonResourceAttributes: 1:path 2:verb
NonResourceRule: 1:verbs:*s 2:nonResourceURLs:*s
ResourceAttributes: 1:namespace 2:verb 3:group 4:version 5:resource 6:subresource 7:name 8:fieldSelector:FieldSelectorAttributes 9:labelSelector:LabelSelectorAttributes
ResourceRule: 1:verbs:*s 2:apiGroups:*s 3:resources:*s 4:resourceNames:*s
SelfSubjectAccessReview: 1:metadata:ObjectMeta 2:spec:SelfSubjectAccessReviewSpec 3:status:SubjectAccessReviewStatus
SelfSubjectAccessReviewSpec: 1:resourceAttributes:ResourceAttributes 2:nonResourceAttributes:NonResourceAttributes
SelfSubjectRulesReview: 1:metadata:ObjectMeta 2:spec:SelfSubjectRulesReviewSpec 3:status:SubjectRulesReviewStatus
SelfSubjectRulesReviewSpec: 1:namespace
SubjectAccessReview: 1:metadata:ObjectMeta 2:spec:SubjectAccessReviewSpec 3:status:SubjectAccessReviewStatus
SubjectAccessReviewSpec: 1:resourceAttributes:ResourceAttributes 2:nonResourceAttributes:NonResourceAttributes 3:user 4:groups:*s 5:extra:{ExtraValue} 6:uid
SubjectAccessReviewStatus: 1:allowed:b! 4:denied:b 2:reason 3:evaluationError
SubjectRulesReviewStatus: 1:resourceRules:*ResourceRule 2:nonResourceRules:*NonResourceRule 3:incomplete:b! 4:evaluationError
"""

_CERTIFICATES = """
CertificateSigningRequest: 1:metadata:ObjectMeta 2:spec:CertificateSigningRequestSpec 3:status:CertificateSigningRequestStatus
CertificateSigningRequestCondition: 1:type 6:status 2:reason 3:message 4:lastUpdateTime:Time 5:lastTransitionTime:Time
CertificateSigningRequestSpec: 1:request:y 7:signerName 8:expirationSeconds:i! 5:usages:*s 2:username 3:uid 4:groups:*s 6:extra:{ExtraValue}
CertificateSigningRequestStatus: 1:conditions:*CertificateSigningRequestCondition 2:certificate:y
ExtraValue: =list
"""

_COORDINATION = """
Lease: 1:metadata:ObjectMeta 2:spec:LeaseSpec
LeaseSpec: 1:holderIdentity:s! 2:leaseDurationSeconds:i! 3:acquireTime:MicroTime 4:renewTime:MicroTime 5:leaseTransitions:i! 6:strategy:s! 7:preferredHolder:s!
"""

_DISCOVERY = """
Endpoint: 1:addresses:*s 2:conditions:EndpointConditions 3:hostname:s! 4:targetRef:ObjectReference 5:deprecatedTopology:{s} 6:nodeName:s! 7:zone:s! 8:hints:EndpointHints
EndpointConditions: 1:ready:b! 2:serving:b! 3:terminating:b!
EndpointHints: 1:forZones:*ForZone 2:forNodes:*ForNode
EndpointPort: 1:name:s! 2:protocol:s! 3:port:i! 4:appProtocol:s!
EndpointSlice: 1:metadata:ObjectMeta 4:addressType 2:endpoints:*Endpoint 3:ports:*EndpointPort
ForZone: 1:name
ForNode: 1:name
"""

_AUTOSCALING_V1 = """
CrossVersionObjectReference: 1:kind 2:name 3:apiVersion
HorizontalPodAutoscaler: 1:metadata:ObjectMeta 2:spec:HorizontalPodAutoscalerSpec 3:status:HorizontalPodAutoscalerStatus
HorizontalPodAutoscalerSpec: 1:scaleTargetRef:CrossVersionObjectReference 2:minReplicas:i! 3:maxReplicas:i! 4:targetCPUUtilizationPercentage:i!
HorizontalPodAutoscalerStatus: 1:observedGeneration:i! 2:lastScaleTime:Time 3:currentReplicas:i! 4:desiredReplicas:i! 5:currentCPUUtilizationPercentage:i!
"""

PACKAGES: dict[str, str] = {
    "meta": _META,
    "core": _CORE,
    "apps": _APPS,
    "batch": _BATCH,
    "rbac": _RBAC,
    "policy": _POLICY,
    "scheduling": _SCHEDULING,
    "networking": _NETWORKING,
    "authentication": _AUTHENTICATION,
    "authorization": _AUTHORIZATION,
    "certificates": _CERTIFICATES,
    "coordination": _COORDINATION,
    "discovery": _DISCOVERY,
    "autoscaling_v1": _AUTOSCALING_V1,
}
"""Package name -> its message table text."""

GROUP_VERSIONS: dict[str, str] = {
    "v1": "core",
    "apps/v1": "apps",
    "batch/v1": "batch",
    "rbac.authorization.k8s.io/v1": "rbac",
    "policy/v1": "policy",
    "scheduling.k8s.io/v1": "scheduling",
    "networking.k8s.io/v1": "networking",
    "authentication.k8s.io/v1": "authentication",
    "authorization.k8s.io/v1": "authorization",
    "certificates.k8s.io/v1": "certificates",
    "coordination.k8s.io/v1": "coordination",
    "discovery.k8s.io/v1": "discovery",
    "autoscaling/v1": "autoscaling_v1",
    "meta.k8s.io/v1": "meta",
}
"""apiVersion of an envelope -> the package whose messages it names."""
